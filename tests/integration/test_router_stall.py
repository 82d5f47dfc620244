"""The router when the broker stops answering for longer than the request timeout: the sends in
flight fail, the worker commits nothing past them and exits non-zero (without waiting for the
broker), and the restarted worker routes every event. At-least-once: copies are dropped by id."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from bus.demo_events import scripted_events
from bus.kafka.clients import consumer as make_consumer
from bus.kafka.reader import read_all
from bus.local_broker import LocalBroker
from bus.settings import KafkaSettings
from schemas.events import Event, parse_event_obj
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


@dataclass
class BurstRun:
    """The router in the middle of a burst of events on a live broker: the events, the referrals
    they must give, and the router's first process."""

    kafka: KafkaSettings
    events: list[Event]
    expected: dict[uuid.UUID, Referral]
    referrals_of: dict[str, set[uuid.UUID]]
    agencies: set[str]
    router: Service
    first_run: subprocess.Popen[bytes]

    def routed(self) -> set[uuid.UUID]:
        """The ids of the referrals on the agencies' topics."""
        return {Referral.model_validate_json(r.value or b"").referral_id
                for r in read_referrals(self.kafka, self.agencies)}

    def exit_code(self, within_s: float, what: str) -> int:
        """The first run's exit code once it has exited, within `within_s` (its log in the failure)."""
        first_run = self.first_run
        try:
            wait_for(lambda: first_run.poll() is not None, within_s, what)
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; the router's log ends:\n{self.router.log[-4000:]}") from None
        return first_run.returncode

    def check_exit_and_recovery(self, rc: int, exited_after: float) -> None:
        """The first run crashed on a failed delivery and committed only events whose referrals
        all reached the broker; a restart, as a supervisor does it, routes every event."""
        assert rc != 0, self.router.log
        assert "A delivery failed: crashing the worker" in self.router.log
        partial = self.routed()
        assert partial < set(self.expected), "the whole burst was routed before the stall: nothing was in flight"

        committed = committed_offsets(self.kafka, RouterSettings().app_name)
        inbound = asyncio.run(read_all(self.kafka, [EVENTS.name]))
        assert len(inbound) == len(self.events)
        committed_unrouted = [(r.partition, r.offset) for r in inbound
                              if r.offset < committed[r.partition]
                              and not self.referrals_of[json.loads(r.value or b"")["event_id"]] <= partial]
        assert committed_unrouted == [], "committed past events whose referrals never reached the broker"

        self.router.start()  # what `restart: unless-stopped` or systemd does
        wait_for(lambda: set(self.expected) <= self.routed(), 90, "every referral after the restart")
        print(f"exited {exited_after:.1f}s into the stall with code {rc}; "
              f"{len(partial)} of {len(self.expected)} referrals routed before it, "
              f"{sum(committed.values())} of {len(self.events)} events committed")


def router_mid_burst(kafka: KafkaSettings, spawn: Callable[..., Service], copies: int) -> BurstRun:
    """A router routing `copies` times the scripted events: started on the first few, then given
    the rest; returns once the burst's referrals are reaching the broker. Stalled only then, it has
    sends in flight that get no answer (stalled before it had fetched the burst, it would have
    nothing in flight, lose nothing, and rightly wait for the broker instead of exiting)."""
    events = [parse_event_obj(e) for _ in range(copies) for e in scripted_events()]
    warm, burst = events[:5], events[5:]
    expected = expected_referrals(events)
    referrals_of: dict[str, set[uuid.UUID]] = {str(e.event_id): set() for e in events}
    for r in expected.values():
        referrals_of[str(r.event_id)].add(r.referral_id)
    agencies = {r.agency for r in expected.values()}

    publish(kafka, [e.model_dump_json().encode() for e in warm])
    router = spawn("router", env={"REFERRAL_BUS_REQUEST_TIMEOUT_MS": str(REQUEST_TIMEOUT_MS),
                                  "REFERRAL_BUS_SESSION_TIMEOUT_MS": str(REQUEST_TIMEOUT_MS)})
    assert router.process is not None
    run = BurstRun(kafka, events, expected, referrals_of, agencies, router, router.process)
    warm_ids = set().union(*(referrals_of[str(e.event_id)] for e in warm))
    wait_for(lambda: warm_ids <= run.routed(), 60, "the router running (first events routed)")
    asyncio.run(publish_and_wait_for_referrals(kafka, [e.model_dump_json().encode() for e in burst], agencies,
                                               more_than=len(warm_ids)))
    return run


def test_router_stalled_past_its_request_timeout_exits_non_zero_and_its_restart_routes_every_event(
        broker: LocalBroker, kafka: KafkaSettings, spawn: Callable[..., Service]) -> None:
    run = router_mid_burst(kafka, spawn, copies=1000)
    broker.freeze()
    frozen_at = time.monotonic()
    try:
        # It exits while the broker is still frozen: the first failed delivery crashes it (its
        # request timeout in), then a shutdown that waits for no broker. Nothing waits for the
        # broker, not even an offset commit in flight (test_router_commit_stall.py).
        rc = run.exit_code(90, "the router to exit while the broker is frozen")
        exited_after = time.monotonic() - frozen_at
    finally:
        broker.thaw()
    run.check_exit_and_recovery(rc, exited_after)
