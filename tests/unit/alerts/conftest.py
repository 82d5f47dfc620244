"""Hand-built events and referrals for the alerts unit tests (no broker, no rule engine)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest

from rules.deadlines import Deadlines
from schemas.alerts import dump
from schemas.events import Event, MissingChildReport, parse_event_obj
from schemas.referrals import Citation, Referral, referral_id_for
from services.alerts.handlers import Handlers
from services.router.alert import police_alert

T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)


def missing_child(event_id: uuid.UUID | None = None, *, jurisdiction: str = "xian", age: int = 6,
                  sex: str = "female", place: str = "西安北站", exercise: bool = False,
                  case_id: uuid.UUID | None = None, at: dt.datetime = T0) -> MissingChildReport:
    report = parse_event_obj({
        "event_id": str(event_id or uuid.uuid4()), "kind": "child_missing_reported",
        "jurisdiction": jurisdiction, "occurred_at": (at - dt.timedelta(minutes=30)).isoformat(),
        "reported_at": at.isoformat(), "reporter": {"agency": None, "role": "parent_or_guardian"},
        "person": {"age": age, "sex": sex}, "last_seen_at": (at - dt.timedelta(minutes=30)).isoformat(),
        "last_seen_location": {"place": place}, "exercise": exercise,
        **({"case_id": str(case_id)} if case_id else {}),
    })
    assert isinstance(report, MissingChildReport)
    return report


def clue(kind: str = "child_of_unknown_origin_found", *, jurisdiction: str = "xian", age: int | None = 7,
         sex: str | None = "female", place: str | None = "西安北站候车室", at: dt.datetime = T0 + dt.timedelta(hours=3),
         exercise: bool = False, case_id: uuid.UUID | None = None) -> Event:
    obj: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "kind": kind, "jurisdiction": jurisdiction,
        "occurred_at": at.isoformat(), "reported_at": at.isoformat(),
        "reporter": {"agency": "railway", "role": "railway_staff"},
        "person": {"age": age, "sex": sex}, "exercise": exercise,
    }
    if place:
        obj["location"] = {"place": place}
    if case_id:
        obj["case_id"] = str(case_id)
    return parse_event_obj(obj)


def resolution(case_id: uuid.UUID, *, agency: str | None = "police.command_center",
               exercise: bool = False, at: dt.datetime = T0 + dt.timedelta(days=1)) -> Event:
    return parse_event_obj({
        "event_id": str(uuid.uuid4()), "kind": "case_resolved", "jurisdiction": "xian",
        "occurred_at": at.isoformat(), "reported_at": at.isoformat(),
        "reporter": {"agency": agency, "role": "public"}, "case_id": str(case_id),
        "outcome": "found_alive", "exercise": exercise,
    })


def referral(event: Event, agency: str, role: str = "lead", urgency: str = "immediate",
             rule_id: str = "xian.missing_child_rapid_search") -> Referral:
    deadlines = Deadlines.load()
    return Referral(
        referral_id=referral_id_for(event.event_id, agency, rule_id, role), event_id=event.event_id,
        kind=event.kind, jurisdiction=event.jurisdiction, decided_by=event.jurisdiction, agency=agency,
        role=role,
        action="Rapid child-missing search.", urgency=urgency, reported_at=event.reported_at,
        ack_by=deadlines.ack_by(urgency, event.reported_at), due_by=deadlines.due_by(urgency, event.reported_at),
        rule_id=rule_id,
        citation=Citation(file="001_56bdd0a940e471fd.txt", clause="第八条", quote="认真执行儿童失踪快速查找机制"),
        exercise=event.exercise, case_id=event.case_id,
    )


@pytest.fixture
def deadlines() -> Deadlines:
    return Deadlines.load()


def tracked_alert(handlers: Handlers, agency: str = "police.command_center") -> tuple[uuid.UUID, uuid.UUID]:
    """A missing child's alert and the command centre's lead referral, both tracked by `handlers`:
    (alert id, lead referral id)."""
    report = missing_child()
    lead = referral(report, agency)
    alert = police_alert(report, [lead], Deadlines.load())
    assert alert is not None
    asyncio.run(handlers.on_alert(dump(alert)))
    asyncio.run(handlers.on_referral(dump(lead)))
    return alert.alert_id, lead.referral_id
