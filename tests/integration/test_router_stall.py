"""The router when the broker stops answering for longer than the request timeout: the sends in
flight fail, the worker commits nothing past them and exits non-zero (without waiting for the
broker), and the restarted worker routes every event. At-least-once: copies are dropped by id."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from bus.demo_events import scripted_events
from bus.kafka.clients import consumer as make_consumer
from bus.kafka.reader import read_all
from bus.local_broker import LocalBroker
from bus.settings import KafkaSettings
from schemas.events import parse_event_obj
from schemas.referrals import Referral
from services.router.settings import RouterSettings
from topics.catalog import EVENTS, REFERRAL_PARTITIONS, referral_topic_name

from .conftest import Service, publish, wait_for
from .test_router import expected_referrals, read_referrals

pytestmark = pytest.mark.integration

#: The router's request timeout here (its session timeout may not exceed it).
REQUEST_TIMEOUT_MS = 4000


def committed_offsets(kafka: KafkaSettings, group: str) -> dict[int, int]:
    """The group's committed offset of each inbound partition: the next offset it would read."""

    async def go() -> dict[int, int]:
        c = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=group, enable_auto_commit=False)
        await c.start()
        try:
            return {p: await c.committed(TopicPartition(EVENTS.name, p)) or 0 for p in range(EVENTS.partitions)}
        finally:
            await c.stop()

    return asyncio.run(go())


async def publish_and_wait_for_referrals(kafka: KafkaSettings, values: list[bytes], agencies: set[str],
                                         more_than: int) -> None:
    """Publish `values`, and return as soon as more than `more_than` referrals are on the
    agencies' topics. The reader is ready before the first value is published: a fast router
    routes thousands of events in the time a reader takes to start."""
    reader = make_consumer(kafka, group_id=None)
    await reader.start()
    try:
        parts = [TopicPartition(referral_topic_name(a), p)
                 for a in sorted(agencies) for p in range(REFERRAL_PARTITIONS)]
        reader.assign(parts)
        await reader.seek_to_beginning(*parts)
        await asyncio.to_thread(publish, kafka, values)
        seen, deadline = 0, time.monotonic() + 60
        while seen <= more_than:
            assert time.monotonic() < deadline, f"only {seen} referrals on the broker after 60 s"
            seen += sum(len(records) for records in (await reader.getmany(*parts, timeout_ms=50)).values())
    finally:
        await reader.stop()


def test_router_stalled_past_its_request_timeout_exits_non_zero_and_its_restart_routes_every_event(
        broker: LocalBroker, kafka: KafkaSettings, spawn: Callable[..., Service]) -> None:
    events = [parse_event_obj(e) for _ in range(1000) for e in scripted_events()]
    warm, burst = events[:5], events[5:]
    expected = expected_referrals(events)
    referrals_of: dict[str, set[uuid.UUID]] = {str(e.event_id): set() for e in events}
    for r in expected.values():
        referrals_of[str(r.event_id)].add(r.referral_id)
    agencies = {r.agency for r in expected.values()}

    def routed() -> set[uuid.UUID]:
        return {Referral.model_validate_json(r.value or b"").referral_id for r in read_referrals(kafka, agencies)}

    publish(kafka, [e.model_dump_json().encode() for e in warm])
    router = spawn("router", env={"REFERRAL_BUS_REQUEST_TIMEOUT_MS": str(REQUEST_TIMEOUT_MS),
                                  "REFERRAL_BUS_SESSION_TIMEOUT_MS": str(REQUEST_TIMEOUT_MS)})
    first_run = router.process
    assert first_run is not None
    warm_ids = set().union(*(referrals_of[str(e.event_id)] for e in warm))
    wait_for(lambda: warm_ids <= routed(), 60, "the router running (first events routed)")

    # Frozen only once the burst's referrals are reaching the broker: the router is in the middle of
    # it, with sends in flight that get no answer. (Frozen before it had fetched the burst, it would
    # have nothing in flight, lose nothing, and rightly wait for the broker instead of exiting.)
    asyncio.run(publish_and_wait_for_referrals(kafka, [e.model_dump_json().encode() for e in burst], agencies,
                                               more_than=len(warm_ids)))
    broker.freeze()
    frozen_at = time.monotonic()
    try:
        # It exits while the broker is still frozen: the first failed delivery crashes it (its
        # request timeout in), then a shutdown that waits for no broker. Nothing waits for the
        # broker, not even an offset commit in flight (test_router_commit_stall.py).
        try:
            wait_for(lambda: first_run.poll() is not None, 90, "the router to exit while the broker is frozen")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; the router's log ends:\n{router.log[-4000:]}") from None
        exited_after = time.monotonic() - frozen_at
        rc = first_run.returncode
    finally:
        broker.thaw()
    assert rc != 0, router.log
    assert "A delivery failed: crashing the worker" in router.log
    partial = routed()
    assert partial < set(expected), "the whole burst was routed before the stall: nothing was in flight"

    # What it had committed: only events whose referrals all reached the broker.
    committed = committed_offsets(kafka, RouterSettings().app_name)
    inbound = asyncio.run(read_all(kafka, [EVENTS.name]))
    assert len(inbound) == len(events)
    committed_unrouted = [(r.partition, r.offset) for r in inbound
                          if r.offset < committed[r.partition]
                          and not referrals_of[json.loads(r.value or b"")["event_id"]] <= partial]
    assert committed_unrouted == [], "committed past events whose referrals never reached the broker"

    router.start()  # what `restart: unless-stopped` or systemd does
    wait_for(lambda: set(expected) <= routed(), 60, "every referral after the restart")
    print(f"exited {exited_after:.1f}s into the stall with code {rc}; "
          f"{len(partial)} of {len(expected)} referrals routed before it, "
          f"{sum(committed.values())} of {len(events)} events committed")
