"""The faust agent wiring, in faust's test context (no broker): messages in, sends out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import pytest
from faust.exceptions import ProducerSendError
from faust.types import Message
from mode import CrashingSupervisor
from prometheus_client import CollectorRegistry

from bus.demo_events import scripted_events
from bus.faust_app import BusApp, make_app
from bus.kafka.delivery import DeliveryFailed
from bus.settings import KafkaSettings
from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from services.router.agents import Tally, wire
from services.router.handling import Position, Router
from services.router.metrics import RouterMetrics


def router_app(tmp_path: Path) -> tuple[BusApp, CollectorRegistry]:
    app = make_app("router-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    registry = CollectorRegistry()
    wire(app, Router(load_rulebook(), Deadlines.load()), RouterMetrics(registry))
    return app, registry


class FakeProducer:
    """Records sends; each returns an already-settled delivery future, as aiokafka's would."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail = fail

    async def send(self, topic: str, key: bytes, value: bytes, *_: Any) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            fut.set_exception(ConnectionError("broker went away"))
        else:
            fut.set_result(None)
        return fut


async def test_agent_sends_each_referral_to_its_agency_topic_and_counts_it(tmp_path: Path) -> None:
    app, registry = router_app(tmp_path)
    producer = FakeProducer()
    stream = FetchedStream(json.dumps(scripted_events()[0]).encode(), b"{broken")
    with patch.object(type(app), "producer", producer):
        await _run_agent_until(app, stream, lambda: _until(lambda: len(producer.sent) >= 2))
    topics = [topic for topic, _, _ in producer.sent]
    assert "referrals.police.command_center" in topics
    assert topics[-1] == "events.deadletter"
    assert registry.get_sample_value("referral_bus_dead_letters_total", {"reason": "invalid_json"}) == 1
    assert registry.get_sample_value(
        "referral_bus_events_received_total",
        {"kind": "child_missing_reported", "jurisdiction": "xian", "reporter_agency": "public"}) == 1
    assert registry.get_sample_value(
        "referral_bus_referrals_total", {"agency": "police.command_center", "role": "lead"}) == 1


def test_a_failed_delivery_stops_the_commit() -> None:
    async def go() -> None:
        from bus.kafka.delivery import DeliveryGuard

        guard = DeliveryGuard()
        fut = await FakeProducer(fail=True).send("t", b"k", b"v")
        guard.track(fut)
        with pytest.raises(DeliveryFailed, match="broker went away"):
            guard.raise_if_failed()

    asyncio.run(go())


def test_a_failed_delivery_stops_every_later_commit_too() -> None:
    async def go() -> None:
        from bus.kafka.delivery import DeliveryGuard

        guard = DeliveryGuard()
        guard.track(await FakeProducer(fail=True).send("t", b"k", b"v"))
        for _ in range(2):
            with pytest.raises(DeliveryFailed):
                guard.raise_if_failed()
        guard.track(await FakeProducer().send("t", b"k", b"v"))
        with pytest.raises(DeliveryFailed, match="broker went away"):
            guard.raise_if_failed()

    asyncio.run(go())


class RaisingProducer:
    """A send that raises instead of returning a future: aiokafka found no room in the partition's
    batch within the request timeout (the broker stalled), or no metadata, or a message too large."""

    async def send(self, *_: Any) -> asyncio.Future[None]:
        raise ProducerSendError("Error while sending: KafkaTimeoutError()")


async def test_a_send_that_raises_stops_the_agent_with_its_batch_unacked(tmp_path: Path) -> None:
    # faust's default supervisor would restart the agent; the crashing one stops the worker, and
    # no commit passes the batch, whose records are not acked (the producer also fails the
    # delivery guard for good: tests/unit/test_delivery_guard.py).
    app, _ = router_app(tmp_path)
    stream = FetchedStream(json.dumps(scripted_events()[0]).encode())
    with patch.object(type(app), "producer", RaisingProducer()), pytest.raises(ProducerSendError):
        await _drive(app.agents["route-events"].fun(stream))
    assert not any(m.acked for m in stream.batch)
    assert app.agents["route-events"].supervisor_strategy is CrashingSupervisor


class BlockedProducer:
    """A send waiting for room in the producer's buffer (the broker stalled) until cancelled."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def send(self, *_: Any) -> asyncio.Future[None]:
        self.waiting.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class FetchedStream:
    """What the agent's stream gives it: one fetched batch of messages, then nothing more."""

    def __init__(self, *values: bytes) -> None:
        self.batch = [Message("events.inbound", 0, offset, 0.0, 0, None, None, value, None, generation_id=0)
                      for offset, value in enumerate(values)]
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()  # the agent reads its channel's queue
        queue.put_nowait(self.batch)
        self.channel = SimpleNamespace(topics=("events.inbound",), queue=queue)


async def _until(done: Callable[[], bool]) -> None:
    while not done():
        await asyncio.sleep(0.01)


async def _run_agent_until(app: BusApp, stream: FetchedStream, ready: Callable[[], Awaitable[Any]]) -> None:
    """Run the routing agent's loop on one batch and cancel it (what stopping the worker does)."""
    task = asyncio.ensure_future(_drive(app.agents["route-events"].fun(stream)))
    try:
        await asyncio.wait_for(ready(), 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _drive(agent: Awaitable[None]) -> None:
    """Run the agent's loop (a coroutine: it yields nothing to faust) until it ends."""
    await agent


async def test_stopping_the_worker_during_a_blocked_send_leaves_the_batch_unacked(tmp_path: Path) -> None:
    # The shutdown's last commit covers only acked records: the batch is routed again on restart.
    app, _ = router_app(tmp_path)
    producer = BlockedProducer()
    stream = FetchedStream(json.dumps(scripted_events()[0]).encode())
    with patch.object(type(app), "producer", producer):
        await _run_agent_until(app, stream, producer.waiting.wait)
    assert not any(m.acked for m in stream.batch)


async def test_a_batch_is_acked_once_the_agent_asks_for_the_next(tmp_path: Path) -> None:
    app, _ = router_app(tmp_path)
    producer = FakeProducer()
    stream = FetchedStream(json.dumps(scripted_events()[0]).encode(), json.dumps(scripted_events()[1]).encode())
    with patch.object(type(app), "producer", producer):
        await _run_agent_until(app, stream, lambda: _until(lambda: all(m.acked for m in stream.batch)))
    app.delivery_guard.raise_if_failed()


def test_the_tally_adds_what_it_observed_once_however_many_batches_it_flushes() -> None:
    # One tally per agent, which keeps the metrics' children between batches.
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    router = Router(load_rulebook(), Deadlines.load())
    outcome = router.handle(json.dumps(scripted_events()[0]).encode(), Position("events.inbound", 0, 0))
    tally = Tally()
    tally.observe(outcome, metrics, 0)
    tally.flush(metrics)
    tally.observe(outcome, metrics, 1)
    tally.observe(outcome, metrics, 2)
    tally.flush(metrics)
    tally.flush(metrics)  # nothing observed since
    assert registry.get_sample_value(
        "referral_bus_events_received_total",
        {"kind": "child_missing_reported", "jurisdiction": "xian", "reporter_agency": "public"}) == 3
    assert registry.get_sample_value(
        "referral_bus_referrals_total", {"agency": "police.command_center", "role": "lead"}) == 3
