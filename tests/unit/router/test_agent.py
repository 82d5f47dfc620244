"""The faust agent wiring, in faust's test context (no broker): messages in, sends out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import pytest
from faust.exceptions import ProducerSendError
from prometheus_client import CollectorRegistry

from referral_bus.demo_events import scripted_events
from referral_bus.faust_app import BusApp, make_app
from referral_bus.kafka.delivery import DeliveryFailed
from referral_bus.rules.deadlines import Deadlines
from referral_bus.rules.engine import load_rulebook
from referral_bus.services.router.agents import wire
from referral_bus.services.router.handling import Router
from referral_bus.services.router.metrics import RouterMetrics
from referral_bus.settings import KafkaSettings


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
    with patch.object(type(app), "producer", producer):
        async with app.agents["route-events"].test_context() as ctx:
            await ctx.put(json.dumps(scripted_events()[0]).encode())
            await ctx.put(b"{broken")
            for _ in range(100):
                if len(producer.sent) >= 2:
                    break
                await asyncio.sleep(0.01)
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
        from referral_bus.kafka.delivery import DeliveryGuard

        guard = DeliveryGuard()
        fut = await FakeProducer(fail=True).send("t", b"k", b"v")
        guard.track(fut)
        with pytest.raises(DeliveryFailed, match="broker went away"):
            guard.raise_if_failed()

    asyncio.run(go())


def test_a_failed_delivery_stops_every_later_commit_too() -> None:
    async def go() -> None:
        from referral_bus.kafka.delivery import DeliveryGuard

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


async def test_a_send_that_raises_crashes_the_agent_and_no_later_commit_passes(tmp_path: Path) -> None:
    # faust's default supervisor would restart the agent, and closing the half-sent batch acks its
    # events: a commit would then pass outputs never sent.
    app, _ = router_app(tmp_path)
    with patch.object(type(app), "producer", RaisingProducer()), pytest.raises(ProducerSendError):
        async with app.agents["route-events"].test_context() as ctx:
            await ctx.put(json.dumps(scripted_events()[0]).encode())
            for _ in range(100):
                await asyncio.sleep(0.01)
    with pytest.raises(DeliveryFailed, match="KafkaTimeoutError"):
        app.delivery_guard.raise_if_failed()



class BlockedProducer:
    """A send waiting for room in the producer's buffer (the broker stalled) until cancelled."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def send(self, *_: Any) -> asyncio.Future[None]:
        self.waiting.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class OneBatchStream:
    """What the agent asks of its faust stream: one batch of deliveries, then nothing more."""

    def __init__(self, *values: bytes) -> None:
        self.batch = [SimpleNamespace(message=SimpleNamespace(value=v, topic="events.inbound", partition=0, offset=i))
                      for i, v in enumerate(values)]

    async def take_events(self, *_: Any, **__: Any) -> AsyncIterator[list[Any]]:
        yield self.batch
        await asyncio.Event().wait()


async def _cancel_agent_when(app: BusApp, ready: Callable[[], Awaitable[Any]]) -> None:
    """Run the routing agent's loop on one batch and cancel it (what stopping the worker does)."""
    steps = app.agents["route-events"].fun(OneBatchStream(json.dumps(scripted_events()[0]).encode()))
    task = asyncio.ensure_future(_drive(steps))
    await asyncio.wait_for(ready(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _drive(steps: AsyncIterator[None]) -> None:
    async for _ in steps:
        pass


async def test_stopping_the_worker_during_a_blocked_send_commits_nothing_past_the_batch(tmp_path: Path) -> None:
    # Cancelled mid-batch, the shutdown's commit would ack the batch's events, outputs unsent.
    app, _ = router_app(tmp_path)
    producer = BlockedProducer()
    with patch.object(type(app), "producer", producer):
        await _cancel_agent_when(app, producer.waiting.wait)
    with pytest.raises(DeliveryFailed, match="CancelledError"):
        app.delivery_guard.raise_if_failed()


async def test_stopping_the_worker_between_batches_leaves_the_commit_alone(tmp_path: Path) -> None:
    app, _ = router_app(tmp_path)
    producer = FakeProducer()

    async def batch_sent() -> None:
        while not producer.sent:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the loop is back in take_events, waiting for the next batch

    with patch.object(type(app), "producer", producer):
        await _cancel_agent_when(app, batch_sent)
    app.delivery_guard.raise_if_failed()
