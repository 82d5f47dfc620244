"""Encoding the messages the bus builds itself (schemas/encoding.py): the same bytes the models
write, without building and validating them first."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic_core import to_json

from bus.demo_events import scripted_events
from rules.catalog import catalog
from rules.deadlines import Deadlines
from rules.engine import load_rulebook, route, route_written
from schemas.alerts import ChildDescriptors, PoliceAlert, descriptors_of
from schemas.encoding import Uuid5, built, dump_values, model_values, template, utc_json, utc_now_json
from schemas.events import parse_event
from schemas.receipts import AUDIT_NAMESPACE, AuditRecord, Receipt, audit_record, audit_records_json
from schemas.referrals import Citation, Referral, referral_id_for, referral_id_suffix, referral_ids
from services.router.alert import police_alert
from services.router.handling import Position, Routed, Router, written_referrals
from services.router.outputs import AuditEmitter, ReceiptEmitter, emitters
from topics.catalog import AUDIT, POLICE_ALERTS, RECEIPTS

AT = dt.datetime(2026, 12, 5, 8, 30, 1, 250000, tzinfo=dt.timezone(dt.timedelta(hours=8)))
CITATION = Citation(file="001_56bdd0a940e471fd.txt", clause="第八条", quote="认真执行 \"快速查找\"\n机制")


def test_dump_values_writes_what_the_model_writes_defaults_and_nested_models_included() -> None:
    values: dict[str, Any] = {"referral_id": uuid.uuid4(), "event_id": uuid.uuid4(), "kind": "child_missing_reported",
                              "jurisdiction": "xian", "decided_by": "xian", "agency": "police.command_center",
                              "role": "lead", "action": "Search at once", "urgency": "immediate",
                              "reported_at": AT, "ack_by": AT + dt.timedelta(minutes=5), "due_by": None,
                              "rule_id": "xian.x", "citation": CITATION,
                              "subject": {"person": {"age": 6, "wishes": ["return_home"]}, "lat": 1e-05}}
    assert dump_values(Referral, values) == Referral(**values).model_dump_json().encode()
    assert json.loads(dump_values(Referral, values))["constraints"] == []  # a default filled in


def test_model_values_refuses_a_missing_required_field_and_an_unknown_one() -> None:
    with pytest.raises(KeyError, match=r"AuditRecord\.audit_id is required"):
        model_values(AuditRecord, {"event_id": "e", "action": "routed", "actor": "router", "at": AT})
    with pytest.raises(ValueError, match="no field"):
        model_values(AuditRecord, {"audit_id": uuid.uuid4(), "event_id": "e", "action": "routed",
                                   "actor": "router", "at": AT, "colour": "red"})


def test_a_message_the_bus_builds_says_its_schema_version_first_as_the_model_does() -> None:
    """The bus's values leave `schema_version` out (the model's default); the bytes carry it, first."""
    values: dict[str, Any] = {"audit_id": uuid.uuid4(), "event_id": "e", "action": "routed", "actor": "router",
                              "at": AT, "referral_id": None, "agency": None, "detail": None}
    written = dump_values(AuditRecord, values)
    assert written.startswith(b'{"schema_version":"1.0",')
    assert written == AuditRecord(**values).model_dump_json().encode()
    assert dump_values(AuditRecord, {"schema_version": "1.0", **values}) == written
    assert dump_values(AuditRecord, {k: v for k, v in values.items() if k != "detail"}) == written


@given(st.uuids(), st.text(), st.text())
def test_uuid5_hashes_the_prefix_once_and_gives_uuid5(namespace: uuid.UUID, prefix: str, suffix: str) -> None:
    ids = Uuid5(namespace, prefix)
    expected = uuid.uuid5(namespace, prefix + suffix)
    made = ids(suffix)
    assert made == expected and hash(made) == hash(expected) and made.version == 5
    assert (str(made), made.variant, made.is_safe) == (str(expected), expected.variant, expected.is_safe)
    assert ids.text(suffix) == str(expected)
    assert ids.with_json(suffix) == (expected, to_json(str(expected)))
    assert ids.json(suffix.encode()) == to_json(str(expected))


@given(st.uuids(), st.text(), st.text(), st.text())
def test_uuid5_after_a_prefix_is_uuid5_of_both_prefixes(namespace: uuid.UUID, first: str, more: str,
                                                        suffix: str) -> None:
    ids = Uuid5(namespace, first).after(more)
    again = Uuid5(namespace, first).after(more.encode())
    expected = uuid.uuid5(namespace, first + more + suffix)
    assert ids(suffix) == again(suffix) == expected and ids.json(suffix.encode()) == to_json(str(expected))


def test_referral_ids_of_one_event_are_referral_id_for() -> None:
    event_id = uuid.uuid4()
    ids = referral_ids(event_id)
    for agency, rule_id, role in [("police", "xian.a", "lead"), ("civil_affairs", "national_2021.b", "cooperating")]:
        assert ids(referral_id_suffix(agency, rule_id, role)) == referral_id_for(event_id, agency, rule_id, role)


def test_audit_records_of_one_step_are_audit_record_serialised() -> None:
    event_id = uuid.uuid4()
    entries = [(uuid.uuid4(), "police", "lead"), (None, None, "invalid_event"), (uuid.uuid4(), "health", None)]
    got = audit_records_json(event_id, "routed", "router", AT, entries)
    assert got == [audit_record(event_id, "routed", "router", AT, referral_id=r, agency=a, detail=d)
                   .model_dump_json().encode() for r, a, d in entries]
    assert uuid.UUID(json.loads(got[0])["audit_id"]).version == 5
    assert AUDIT_NAMESPACE  # the ids are in the audit namespace (compared above)


MODEL_OF: dict[str, type[BaseModel]] = {POLICE_ALERTS.name: PoliceAlert, RECEIPTS.name: Receipt,
                                        AUDIT.name: AuditRecord}


@pytest.mark.parametrize("situation", range(5))
def test_every_message_the_router_builds_is_what_its_model_writes(situation: int) -> None:
    """Each output, read back into its model and written again, is the same bytes: nothing the
    model would write differently (a format, an order, a default) and nothing it would refuse."""
    deadlines = Deadlines.load()
    router = Router(load_rulebook(), deadlines, emitters(deadlines))
    for exercise, case_id in ((False, None), (True, str(uuid.uuid4()))):
        event = dict(scripted_events()[situation], exercise=exercise)
        if case_id:
            event["case_id"] = case_id
        outcome = router.handle(json.dumps(event, ensure_ascii=False).encode(), Position("events.inbound", 0, 0))
        assert isinstance(outcome, Routed)
        topics = {m.topic for m in outcome.messages}
        assert {RECEIPTS.name, AUDIT.name} <= topics
        assert (POLICE_ALERTS.name in topics) == (event["kind"] == "child_missing_reported")
        for message in outcome.messages:
            model = MODEL_OF.get(message.topic, Referral)
            assert message.value.startswith(b'{"schema_version":"1.0",')
            assert model.model_validate_json(message.value).model_dump_json().encode() == message.value


def test_the_alert_receipt_and_audit_are_those_the_validated_models_give() -> None:
    deadlines = Deadlines.load()
    router = Router(load_rulebook(), deadlines)
    fixed = lambda: AT  # noqa: E731
    raw = json.dumps(scripted_events()[0], ensure_ascii=False).encode()
    outcome = router.handle(raw, Position("events.inbound", 0, 0))
    assert isinstance(outcome, Routed)
    event, referrals = outcome.event, outcome.referrals
    alert = police_alert(event, referrals, deadlines)
    assert alert is not None
    written = written_referrals(referrals)
    (alert_message,) = emitters(deadlines)[0](event, written)
    assert (alert_message.key, alert_message.value) == (alert.key, alert.model_dump_json().encode())
    (receipt,) = ReceiptEmitter(now=fixed)(event, written)
    assert Receipt.model_validate_json(receipt.value).routed_to[0].referral_id == referrals[0].referral_id
    audit = AuditEmitter(now=fixed)(event, written)
    assert [m.value for m in audit] == [
        audit_record(event.event_id, "routed", "router", AT, referral_id=r.referral_id, agency=r.agency,
                     detail=r.role).model_dump_json().encode() for r in referrals]
    assert {m.key for m in audit} == {str(event.event_id).encode()}


# ---- Templates: a message with some fields written once ------------------------------------


def test_a_template_writes_what_dump_values_writes_with_any_fields_fixed() -> None:
    values: dict[str, Any] = {"referral_id": uuid.uuid4(), "event_id": uuid.uuid4(), "kind": "child_missing_reported",
                              "jurisdiction": "xian", "decided_by": "xian", "agency": "police.command_center",
                              "role": "lead", "action": "Search 100% at once: %s %b %%", "action_zh": "立即查找",
                              "urgency": "immediate", "reported_at": AT, "ack_by": AT + dt.timedelta(minutes=5),
                              "due_by": None, "rule_id": "xian.x", "citation": CITATION, "constraints": ("a", "b"),
                              "exercise": True, "expired_plan": False, "case_id": None,
                              "subject": {"person": {"age": 6, "wishes": ["return_home"]}, "lat": 1e-05}}
    expected = dump_values(Referral, values)
    names = list(values)
    for holes in (("referral_id",), ("subject",), ("referral_id", "subject"), tuple(names[::2]), tuple(names[1::3]),
                  tuple(names)):
        written = template(Referral, holes, {k: v for k, v in values.items() if k not in holes})
        assert written.holes == holes
        assert written.write({name: to_json(values[name]) for name in holes}) == expected, holes
    # schema_version, neither fixed nor a hole: the model's default, written first.
    assert template(Referral, (), values).write({}) == expected


def test_a_templates_texts_and_its_holes_json_alternately_are_its_message() -> None:
    """`Template.texts`, which a writer joins with parts of its own (the audit records)."""
    values = {"audit_id": uuid.uuid4(), "event_id": "e %s 100%", "action": "routed", "actor": "router", "at": AT,
              "referral_id": None, "agency": "police", "detail": "lead"}
    holes = ("audit_id", "at", "agency")
    written = template(AuditRecord, holes, {k: v for k, v in values.items() if k not in holes})
    assert len(written.texts) == len(holes) + 1
    parts = [to_json(values[name]) for name in holes]
    joined = b"".join(text + part for text, part in zip(written.texts, [*parts, b""], strict=True))
    assert joined == written.fill(*parts) == dump_values(AuditRecord, values)


@given(st.integers(-62135596800 * 10**6, 253402300799 * 10**6 + 999999) | st.integers(0, 10**6)
       | st.integers(1_700_000_000, 1_900_000_000).map(lambda s: s * 10**6))
def test_a_utc_time_is_written_as_pydantic_writes_the_datetime(microseconds: int) -> None:
    """Any instant a timestamp holds, with a fraction and without one (whole seconds)."""
    at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=microseconds)
    assert utc_json(microseconds) == to_json(at)


def test_the_wall_clocks_time_is_written_as_pydantic_writes_it() -> None:
    before = dt.datetime.now(dt.UTC)
    written = utc_now_json()
    after = dt.datetime.now(dt.UTC)
    at = dt.datetime.fromisoformat(json.loads(written))
    assert before <= at <= after and written == to_json(at)


def test_a_template_refuses_an_unknown_field_and_a_required_one_left_out() -> None:
    with pytest.raises(ValueError, match="no field"):
        template(AuditRecord, ("colour",), {})
    with pytest.raises(KeyError, match=r"AuditRecord\.audit_id is required"):
        template(AuditRecord, ("event_id", "at"), {"action": "routed", "actor": "router"})


def test_built_is_the_instance_model_construct_makes() -> None:
    values: dict[str, Any] = {"schema_version": "1.0", "audit_id": uuid.uuid4(), "event_id": "e", "action": "routed",
                              "actor": "router", "at": AT, "referral_id": None, "agency": "police", "detail": None}
    made = built(AuditRecord, dict(values), set(values))
    constructed = AuditRecord.model_construct(**values)
    assert made == constructed == AuditRecord(**values)
    assert made.__dict__ == constructed.__dict__ and list(made.__dict__) == list(constructed.__dict__)
    assert made.model_fields_set == constructed.model_fields_set
    assert made.model_dump_json() == constructed.model_dump_json()


def _events_of_every_kind() -> list[bytes]:
    """Events of every kind in every jurisdiction, before and after plans ended, drills and named cases."""
    out = []
    n = 0
    for jurisdiction in sorted(catalog().jurisdictions):
        for kind in sorted(catalog().event_kinds):
            for year in (2014, 2024):
                n += 1
                at = f"{year}-05-01T10:00:00.25+08:00"
                raw: dict[str, Any] = {
                    "event_id": str(uuid.UUID(int=n, version=4)), "kind": kind, "jurisdiction": jurisdiction,
                    "occurred_at": at, "reported_at": at, "reporter": {"role": "public"},
                    "person": {"age": 6 + n % 12, "sex": "female", "name": "王%s", "wishes": [], "ethnicity": ""},
                    "location": {"place": "站", "address": "路 \"1\" 号\n", "lat": 1e-05},
                    "exercise": n % 3 == 0, "details": {"a": 1, "b": None, "c": ""}}
                if n % 4 == 0 or kind in ("case_resolved", "missing_child_info_release"):
                    raw["case_id"] = str(uuid.UUID(int=n % 5, version=4))
                if kind == "child_missing_reported":
                    raw.update(last_seen_at=at, last_seen_location={"place": "广场"})
                if kind == "case_resolved":
                    raw["outcome"] = "found_alive"
                if kind == "missing_child_info_release":
                    raw.update(guardian_consent=True, public_contact="110")
                out.append(json.dumps(raw, ensure_ascii=False).encode())
    return out


def test_each_referral_the_router_sends_is_what_its_model_writes_and_what_route_gives() -> None:
    """The router's referral messages are written from parts (rules/engine.py `route_written`):
    each is the bytes of the referral's own `model_dump_json`, and the referrals are `route`'s."""
    deadlines = Deadlines.load()
    book = load_rulebook()
    router = Router(book, deadlines)
    checked = 0
    for raw in _events_of_every_kind():
        outcome = router.handle(raw, Position("events.inbound", 0, 0))
        assert isinstance(outcome, Routed), raw
        written = route_written(outcome.event, book, deadlines=deadlines)
        routed = route(outcome.event, book, deadlines=deadlines)
        # The step builds no model (`route_written`); `route` builds them without validation
        # (`built`): each is the referral its message validates into, and writes that message.
        assert [w.referral for w in written] == list(outcome.referrals) == routed
        assert len(written) == len(routed)
        for (duty, value, _), message, referral in zip(written, outcome.messages, routed, strict=False):
            assert value == message.value == referral.model_dump_json().encode()
            assert Referral.model_validate_json(value) == referral
            assert message.key == referral.key
            assert (duty.agency, duty.role, duty.rule_id) == (referral.agency, referral.role, referral.rule_id)
            checked += 1
    assert checked > 500


def test_an_events_descriptors_are_those_the_validated_model_gives() -> None:
    """`descriptors_of` builds them from the validated event without validating them again."""
    for raw in _events_of_every_kind()[:60] + [json.dumps(e, ensure_ascii=False).encode() for e in scripted_events()]:
        event = parse_event(raw)
        made = descriptors_of(event)
        validated = ChildDescriptors(**made.__dict__)
        assert made == validated and made.model_fields_set == validated.model_fields_set
        assert made.model_dump_json() == validated.model_dump_json()
