"""The router's police alert, receipt and audit records are written from the referrals' parts
(services/router/outputs.py, alert.py): each must be byte for byte what its validated model
writes (`model_dump_json`), for every kind of event, every jurisdiction, every demo situation and
a generated variety of events (times in any offset, drills, named cases, odd texts)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.demo_events import scripted_events
from rules.catalog import catalog
from rules.deadlines import Deadlines
from rules.engine import RuleBook, load_rulebook
from schemas.receipts import AuditRecord, Receipt, audit_record
from services.router.alert import PoliceAlertEmitter, police_alert
from services.router.handling import Outgoing, Position, Routed, Router
from services.router.outputs import AuditEmitter, ReceiptEmitter, emitters, routed_receipt
from topics.catalog import AUDIT, POLICE_ALERTS, RECEIPTS

HERE = Position("events.inbound", 0, 0)
AT = dt.datetime(2026, 12, 5, 8, 30, 1, 250000, tzinfo=dt.timezone(dt.timedelta(hours=8)))
KINDS = sorted(catalog().event_kinds)
JURISDICTIONS = sorted(catalog().jurisdictions)
AGENCIES = sorted(catalog().agencies)


@cache
def _book() -> RuleBook:
    return load_rulebook()


@pytest.fixture(scope="module")
def book() -> RuleBook:
    return _book()


def router(book: RuleBook, at: dt.datetime, deadlines: Deadlines | None = None) -> Router:
    deadlines = deadlines or Deadlines.load()
    return Router(book, deadlines, (PoliceAlertEmitter(deadlines), ReceiptEmitter(lambda: at),
                                    AuditEmitter(lambda: at)))


def expected(outcome: Routed, deadlines: Deadlines, at: dt.datetime) -> list[Outgoing]:
    """What the models write for the outcome's event and referrals: the alert, receipt and audit."""
    event, referrals = outcome.event, outcome.referrals
    out = []
    alert = police_alert(event, referrals, deadlines)
    if alert is not None:
        out.append(Outgoing(POLICE_ALERTS.name, alert.key, alert.model_dump_json().encode()))
    receipt = routed_receipt(event, referrals, at)
    out.append(Outgoing(RECEIPTS.name, receipt.event_id.encode(), receipt.model_dump_json().encode()))
    for r in referrals:
        record = audit_record(event.event_id, "routed", "router", at, referral_id=r.referral_id, agency=r.agency,
                              detail=r.role)
        out.append(Outgoing(AUDIT.name, record.key, record.model_dump_json().encode()))
    return out


def assert_written_as_models(step: Router, raw: bytes, at: dt.datetime) -> Routed:
    outcome = step.handle(raw, HERE)
    assert isinstance(outcome, Routed), outcome
    emitted = list(outcome.messages[len(outcome.referrals):])
    assert emitted == expected(outcome, step.deadlines, at)
    return outcome


def event_of(n: int, kind: str, jurisdiction: str, *, at: str, exercise: bool = False,
             case_id: uuid.UUID | None = None, reporter: str | None = None, place: str = "站",
             person: dict[str, Any] | None = None) -> bytes:
    raw: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=n, version=4)), "kind": kind, "jurisdiction": jurisdiction,
        "occurred_at": at, "reported_at": at, "reporter": {"role": "public", "agency": reporter},
        "person": person if person is not None else {"age": 6 + n % 12, "sex": "female"},
        "location": {"place": place, "address": "路 \"1\" 号\n", "lat": 1e-05},
        "exercise": exercise, "details": {"a": 1, "b": None, "c": ""}}
    if case_id is not None or kind in ("case_resolved", "missing_child_info_release"):
        raw["case_id"] = str(case_id or uuid.UUID(int=n % 5, version=4))
    if kind == "child_missing_reported":
        raw.update(last_seen_at=at, last_seen_location={"place": place})
    if kind == "case_resolved":
        raw["outcome"] = "found_alive"
    if kind == "missing_child_info_release":
        raw.update(guardian_consent=True, public_contact="110")
    return json.dumps(raw, ensure_ascii=False).encode()


@pytest.mark.parametrize("situation", range(len(scripted_events())))
def test_each_demo_situation_writes_what_the_models_write(book: RuleBook, situation: int) -> None:
    step = router(book, AT)
    for exercise, case_id in ((False, None), (True, str(uuid.uuid4()))):
        event = dict(scripted_events()[situation], exercise=exercise)
        if case_id:
            event["case_id"] = case_id
        assert_written_as_models(step, json.dumps(event, ensure_ascii=False).encode(), AT)


def test_the_wall_clocks_time_is_written_as_the_models_write_it(book: RuleBook) -> None:
    """With no clock injected (the router's own, written from its microseconds: `utc_now_json`),
    the receipt and each audit record say when they were written, as their models write it."""
    deadlines = Deadlines.load()
    step = Router(book, deadlines, emitters(deadlines))
    for situation in scripted_events():
        before = dt.datetime.now(dt.UTC)
        outcome = step.handle(json.dumps(situation, ensure_ascii=False).encode(), HERE)
        after = dt.datetime.now(dt.UTC)
        assert isinstance(outcome, Routed), outcome
        event, referrals = outcome.event, outcome.referrals
        [receipt] = [m.value for m in outcome.messages if m.topic == RECEIPTS.name]
        issued_at = Receipt.model_validate_json(receipt).issued_at
        assert before <= issued_at <= after and issued_at.utcoffset() == dt.timedelta(0)  # in UTC, as ever
        assert receipt == routed_receipt(event, referrals, issued_at).model_dump_json().encode()
        audit = [m.value for m in outcome.messages if m.topic == AUDIT.name]
        assert len(audit) == len(referrals)
        for record, r in zip(audit, referrals, strict=True):
            at = AuditRecord.model_validate_json(record).at
            assert before <= at <= after and at.utcoffset() == dt.timedelta(0)
            assert record == audit_record(event.event_id, "routed", "router", at, referral_id=r.referral_id,
                                          agency=r.agency, detail=r.role).model_dump_json().encode()


def test_every_kind_in_every_jurisdiction_writes_what_the_models_write(book: RuleBook) -> None:
    """Before and after plans ended (the receipt's plan note), drills, named cases, with and
    without a reporting agency: an alert with and without the command centre's lead."""
    step = router(book, AT)
    n = 0
    alerts = 0
    for jurisdiction in JURISDICTIONS:
        for kind in KINDS:
            for year in (2014, 2024):
                n += 1
                raw = event_of(n, kind, jurisdiction, at=f"{year}-05-01T10:00:00.25+08:00", exercise=n % 3 == 0,
                               case_id=uuid.UUID(int=n % 7, version=4) if n % 4 == 0 else None,
                               reporter=AGENCIES[n % len(AGENCIES)] if n % 2 else None)
                outcome = assert_written_as_models(step, raw, AT)
                alerts += any(m.topic == POLICE_ALERTS.name for m in outcome.messages)
    assert alerts >= 2 * len(JURISDICTIONS)


def test_an_alert_without_a_lead_and_with_hand_made_referrals_writes_what_the_model_writes() -> None:
    from services.router.handling import written_referrals
    from tests.unit.alerts.conftest import missing_child, referral

    deadlines = Deadlines.load()
    emit = PoliceAlertEmitter(deadlines)
    event = missing_child()
    cases: Sequence[Sequence[Any]] = (
        [], [referral(event, "police", urgency="unspecified", rule_id="x.dna")],
        [referral(event, "police.command_center"), referral(event, "railway", role="cooperating")],
        [referral(event, "railway", role="cooperating"), referral(event, "police.command_center")
         .model_copy(update={"action_zh": "", "subject": {"person": {"age": 6}}})])
    for referrals in cases:
        alert = police_alert(event, referrals, deadlines)
        assert alert is not None
        assert emit(event, written_referrals(referrals)) == (
            Outgoing(POLICE_ALERTS.name, alert.key, alert.model_dump_json().encode()),)


offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
times = st.datetimes(min_value=dt.datetime(2010, 1, 1), max_value=dt.datetime(2030, 12, 31), timezones=offsets)
#: Texts a sender may write in a place (no controls, not blank): quotes, escapes, any script, emoji.
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")) | st.sampled_from('"\\/<>&%'),
                min_size=1, max_size=12).filter(lambda t: t.strip() != "")


@settings(max_examples=150, deadline=None)
#: Missing-child reports (alerts) half the time; any of the catalog's kinds otherwise.
@given(n=st.integers(1, 2**32), kind=st.just("child_missing_reported") | st.sampled_from(KINDS),
       jurisdiction=st.sampled_from(JURISDICTIONS),
       at=times, now=times, exercise=st.booleans(), case_id=st.none() | st.uuids(version=4),
       reporter=st.none() | st.sampled_from(AGENCIES), place=texts,
       person=st.fixed_dictionaries({}, optional={"age": st.integers(0, 17),
                                                  "sex": st.sampled_from(["female", "male"])}))
def test_a_generated_variety_of_events_writes_what_the_models_write(
        n: int, kind: str, jurisdiction: str, at: dt.datetime, now: dt.datetime, exercise: bool,
        case_id: uuid.UUID | None, reporter: str | None, place: str, person: dict[str, Any]) -> None:
    raw = event_of(n, kind, jurisdiction, at=at.isoformat(), exercise=exercise, case_id=case_id,
                   reporter=reporter, place=place, person=person)
    assert_written_as_models(router(_book(), now), raw, now)


def test_written_referrals_are_what_the_engine_writes(book: RuleBook) -> None:
    """`written_referrals` (for emitters called with models) gives the engine's messages and parts,
    and the duty's own fields (what emitters read of `WrittenReferral.duty`) as the engine's duty."""
    from rules.engine import route_written
    from schemas.events import parse_event
    from schemas.referrals import Referral
    from services.router.handling import PART_FIELDS, written_referrals

    own_fields = sorted(set(Referral.model_fields) - set(PART_FIELDS) - {"schema_version"})
    deadlines = Deadlines.load()
    for n, kind in enumerate(("child_missing_reported", *KINDS)):
        event = parse_event(event_of(n + 1, kind, "xian", at="2024-05-01T10:00:00.25+08:00", exercise=n % 2 == 0))
        written = route_written(event, book, deadlines=deadlines)
        from_models = written_referrals([w.referral for w in written])
        assert [(w.value, w.parts) for w in from_models] == [(w.value, w.parts) for w in written]
        assert [[getattr(w.duty, f) for f in own_fields] for w in from_models] == \
            [[getattr(w.duty, f) for f in own_fields] for w in written]
        assert all(set(w.parts) == set(PART_FIELDS) for w in written)
