"""The router on a real broker: referrals reach agency topics, bad input reaches the dead-letter topic,
a router killed mid-stream loses nothing, and neither do routers scaled out and in mid-stream."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord

from bus.demo_events import INVALID_EVENT, scripted_events
from bus.kafka.reader import read_all
from bus.settings import KafkaSettings
from rules.deadlines import Deadlines
from rules.engine import load_rulebook, route
from schemas.events import Event, parse_event_obj
from schemas.referrals import DeadLetter, Referral
from topics.catalog import DEAD_LETTERS, referral_topic_name

from .conftest import Service, publish, wait_for

pytestmark = pytest.mark.integration


def expected_referrals(events: list[Event]) -> dict[uuid.UUID, Referral]:
    book, deadlines = load_rulebook(), Deadlines.load()
    return {r.referral_id: r for e in events for r in route(e, book, deadlines=deadlines)}


def read_referrals(kafka: KafkaSettings, agencies: set[str]) -> list[ConsumerRecord[bytes, bytes]]:
    return asyncio.run(read_all(kafka, sorted(referral_topic_name(a) for a in agencies)))


def test_scripted_events_reach_every_agency_topic_and_bad_input_is_dead_lettered(
        kafka: KafkaSettings, spawn: Callable[..., Service]) -> None:
    events = [parse_event_obj(e) for e in scripted_events()]
    expected = expected_referrals(events)
    agencies = {r.agency for r in expected.values()}
    publish(kafka, [e.model_dump_json().encode() for e in events] + [INVALID_EVENT, b"\xff not json"])
    spawn("router")

    def arrived() -> bool:
        got = {Referral.model_validate_json(r.value or b"").referral_id for r in read_referrals(kafka, agencies)}
        return set(expected) <= got

    wait_for(arrived, 60, "every expected referral on its agency topic")
    records = read_referrals(kafka, agencies)
    for record in records:
        referral = Referral.model_validate_json(record.value or b"")
        assert record.topic == referral_topic_name(referral.agency)
        assert referral == expected[referral.referral_id]

    letters = [DeadLetter.model_validate_json(r.value or b"")
               for r in asyncio.run(read_all(kafka, [DEAD_LETTERS.name]))]
    assert sorted(d.reason for d in letters) == ["invalid_event", "invalid_json"]
    invalid = next(d for d in letters if d.reason == "invalid_event")
    assert base64.b64decode(invalid.original_b64) == INVALID_EVENT
    fields = {e["field"] for e in invalid.errors}
    assert {"event_id", "jurisdiction", "occurred_at"} <= fields


def test_router_killed_mid_stream_loses_nothing_and_receivers_see_each_referral_once(
        kafka: KafkaSettings, spawn: Callable[..., Service], tmp_path: Path) -> None:
    events = [parse_event_obj(e) for _ in range(60) for e in scripted_events()]
    expected = expected_referrals(events)
    agencies = {r.agency for r in expected.values()}
    publish(kafka, [e.model_dump_json().encode() for e in events])
    router = spawn("router")

    def produced() -> int:
        return len(read_referrals(kafka, agencies))

    wait_for(lambda: produced() > 0, 60, "the router's first referrals")
    router.kill()
    partial = produced()
    router.start()
    wait_for(lambda: set(expected) <= {Referral.model_validate_json(r.value or b"").referral_id
                                       for r in read_referrals(kafka, agencies)},
             90, "every referral after the restart")
    copies = Counter(Referral.model_validate_json(r.value or b"").referral_id for r in read_referrals(kafka, agencies))
    assert set(copies) == set(expected), "a referral nobody expected appeared"
    print(f"killed after {partial} of {len(expected)} referrals; copies on topics: "
          f"{sum(copies.values()) - len(copies)}")

    # What an agency sees: `referral-bus tail` presents every referral id once, copies dropped.
    for agency in sorted(agencies):
        tail = spawn("tail", "--agency", agency, "--no-follow", "--json", "--idle-exit", "2")
        assert tail.process is not None and tail.process.wait(60) == 0, tail.log
        shown = [json.loads(line)["referral_id"] for line in tail.log.splitlines() if line.startswith("{")]
        want = sorted(str(r) for r, ref in expected.items() if ref.agency == agency)
        assert sorted(shown) == want, f"{agency}: tail showed {len(shown)} lines for {len(want)} referrals"


def test_a_second_router_joining_and_the_first_dying_mid_stream_lose_no_event(
        kafka: KafkaSettings, spawn: Callable[..., Service]) -> None:
    """Scaled out and back in while reports keep coming: two rebalances hand the inbound
    partitions over mid-stream (the first while its router is busy), and every referral arrives."""
    events = [parse_event_obj(e) for _ in range(600) for e in scripted_events()]
    expected = expected_referrals(events)
    agencies = {r.agency for r in expected.values()}
    payloads = [e.model_dump_json().encode() for e in events]
    first = spawn("router")
    publish(kafka, payloads[:50])
    wait_for(lambda: read_referrals(kafka, agencies), 60, "the first router's referrals")

    # 75 reports/s for 40 s: the second router joins the group in the first ~10 s and both
    # route for a while; the first is killed 25 s in, and the rest only the second can route.
    reporting = threading.Thread(target=publish, args=(kafka, payloads[50:]), kwargs={"per_second": 75.0})
    reporting.start()
    spawn("router")
    time.sleep(25)
    first.kill()
    reporting.join()

    def routed() -> set[uuid.UUID]:
        return {Referral.model_validate_json(r.value or b"").referral_id for r in read_referrals(kafka, agencies)}

    wait_for(lambda: set(expected) <= routed(), 120, "every referral after the hand-overs")
    assert routed() == set(expected), "a referral nobody expected appeared"
