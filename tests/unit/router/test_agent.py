"""The faust agent wiring, in faust's test context (no broker): messages in, sends out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
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
