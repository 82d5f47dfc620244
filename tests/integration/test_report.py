"""`referral-bus report` on a real broker: the router routes a known set of 西安 events, agencies
answer some on time and some late (as the alerts service publishes the answers it applied, in
`alerts.states`), and the report's CSV shows exactly those counts; an answer the alerts service
did not apply (on the answers topic only) counts for nothing, whatever time its sender claims."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import subprocess
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from bus.demo_events import CST, scripted_events
from bus.kafka.clients import producer
from bus.kafka.reader import read_all
from bus.settings import KafkaSettings
from rules.deadlines import Deadlines
from rules.engine import load_rulebook, route
from schemas.alerts import Escalation, ReferralResponse, TrackedState, dump, escalation_id_for
from schemas.events import Event, parse_event_obj
from schemas.referrals import Referral
from services.alerts import lifecycle
from topics.catalog import ALERT_STATES, ANSWERS, ESCALATIONS, EVENTS, referral_topic_name

from .conftest import CLI, Service, wait_for

pytestmark = pytest.mark.integration


def produce(kafka: KafkaSettings, messages: list[tuple[str, bytes, bytes]]) -> None:
    async def go() -> None:
        p = producer(kafka)
        await p.start()
        try:
            for topic, key, value in messages:
                await p.send(topic, value, key=key)
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(go())


def the_events(now: dt.datetime) -> list[Event]:
    """西安: a missing child and three abandoned infants (one a drill); plus one XX市 event."""
    demo = {e["kind"] + e["jurisdiction"]: e for e in scripted_events(now=now)}
    missing, infant, other = (demo["child_missing_reportedxian"], demo["abandoned_infant_foundxian"],
                              demo["transport_hub_suspected_traffickingxx_city"])
    infant2 = {**infant, "event_id": str(uuid.uuid4()),
               "reported_at": (now - dt.timedelta(minutes=20)).isoformat(timespec="seconds")}
    drill = {**infant, "event_id": str(uuid.uuid4()), "exercise": True}
    return [parse_event_obj(e) for e in (missing, infant, infant2, drill, other)]


def test_report_csv_counts_match_what_was_published(kafka: KafkaSettings, spawn: Callable[..., Service],
                                                    service_env: dict[str, str], tmp_path: Path) -> None:
    now = dt.datetime.now(CST) - dt.timedelta(hours=3)  # answers given "late" are still in the past
    year = now.year
    events = the_events(now)
    book, deadlines = load_rulebook(), Deadlines.load()
    expected = [r for e in events for r in route(e, book, deadlines=deadlines)]
    produce(kafka, [(EVENTS.name, str(e.event_id).encode(), e.model_dump_json().encode()) for e in events])
    spawn("router")

    topics = sorted({referral_topic_name(r.agency) for r in expected})

    def routed() -> list[Referral]:
        return [Referral.model_validate_json(r.value or b"") for r in asyncio.run(read_all(kafka, topics))]

    wait_for(lambda: {r.referral_id for r in expected} <= {r.referral_id for r in routed()}, 60,
             "every referral routed")

    # Answers: by referral id order, one in three on time, one late, one not at all; every
    # answered one of civil_affairs also 'done'. Each as the alerts service publishes the answers
    # it applied: in the referral's tracked state, at the time the bus received them (one state
    # is published twice, as a restarted service would).
    counted = sorted((r for r in expected if r.jurisdiction == "xian" and not r.exercise),
                     key=lambda r: str(r.referral_id))
    want: dict[str, Counter[str]] = defaultdict(Counter)
    messages: list[tuple[str, bytes, bytes]] = []

    def publish_state(state: TrackedState) -> None:
        messages.append((ALERT_STATES.name, str(state.id).encode(), dump(state)))

    for i, r in enumerate(counted):
        row = want[r.agency]
        row["received"] += 1
        row[f"kind:{r.kind}"] += 1
        assert r.ack_by is not None
        state = lifecycle.track_referral(r)
        if i % 3 == 2:
            row["not_acknowledged"] += 1
            row["open"] += 1
            # An agency not entitled answered it "on time" straight on the answers topic: the
            # alerts service refused it, and the report does not count it.
            stray = ReferralResponse(referral_id=r.referral_id, answer="acknowledged", agency="youth_league",
                                     responded_at=r.reported_at + dt.timedelta(minutes=1))
            messages.append((ANSWERS.name, stray.key, dump(stray)))
            publish_state(state)
            continue
        on_time = i % 3 == 0
        at = r.reported_at + dt.timedelta(minutes=1) if on_time else r.ack_by + dt.timedelta(minutes=10)
        row["acknowledged_on_time" if on_time else "acknowledged_late"] += 1
        # A late answer whose sender claims it was on time: the bus's time decides.
        claimed = r.reported_at + dt.timedelta(minutes=1)
        ack = ReferralResponse(referral_id=r.referral_id, answer="acknowledged", agency=r.agency, responded_at=claimed)
        state = lifecycle.apply_response(state, ack, at).state
        if r.agency == "civil_affairs":
            done = ReferralResponse(referral_id=r.referral_id, answer="done", agency=r.agency, note="placed",
                                    responded_at=at + dt.timedelta(minutes=5))
            state = lifecycle.apply_response(state, done, at + dt.timedelta(minutes=5)).state
        else:
            row["open"] += 1
        publish_state(state)
        if i == 0:
            publish_state(state)  # the same state again
    for r in expected:
        if r.exercise:
            want[r.agency]["drills"] += 1
            drill_ack = ReferralResponse(referral_id=r.referral_id, answer="acknowledged", agency=r.agency,
                                         exercise=True, responded_at=r.reported_at)
            publish_state(lifecycle.apply_response(lifecycle.track_referral(r), drill_ack, r.reported_at).state)
    # Two escalations (one sent twice) of the missing-child referral.
    lead = next(r for r in counted if r.kind == "child_missing_reported")
    for step in (1, 1, 2):
        esc = Escalation(escalation_id=escalation_id_for(lead.referral_id, step), referral_id=lead.referral_id,
                         case_id=None, action="resend", step=step, level=0, target_agency=lead.agency,
                         target_jurisdiction="xian", reason="no acknowledgement", decided_at=now, ack_deadline=None)
        messages.append((ESCALATIONS.name, esc.key, dump(esc)))
    want[lead.agency]["escalations"] += 2
    # A copy of a referral on its agency topic, as a router crash would leave.
    copy = counted[1]
    messages.append((referral_topic_name(copy.agency), copy.key, copy.model_dump_json().encode()))
    produce(kafka, messages)

    out = tmp_path / "report"
    ran = subprocess.run([CLI, "report", "--jurisdiction", "xian", "--year", str(year), "--out", str(out)],
                         env=service_env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "reading topics" in ran.stderr  # the progress bar

    rows = {row["agency"]: row for row in csv.DictReader((out / f"report-xian-{year}.csv").open())
            if row["agency"] != "total"}
    assert set(rows) == set(want)
    columns = ["received", "acknowledged_on_time", "acknowledged_late", "not_acknowledged", "escalations",
               "open", "drills", *sorted({f"kind:{r.kind}" for r in counted})]
    got = {a: {c: int(rows[a][c]) for c in columns} for a in rows}
    assert got == {a: {c: want[a][c] for c in columns} for a in want}
    # 5 + 7 + 7: the missing child's command center and the four media departments of 西安
    # 第五条 (the emergency release channel), then seven units for each abandoned infant.
    assert sum(g["received"] for g in got.values()) == len(counted) == 19
    assert sum(g["drills"] for g in got.values()) == 7

    md = (out / f"report-xian-{year}.md").read_text()
    assert "按转介编号去除的重复转介：1 件" in md
    assert "以总线收到答复的时间计" in md and "既非办结也非结案" in md
    assert (out / f"report-xian-{year}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
