"""Event validation as a reporter meets it, and the published JSON Schemas."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.contract import JSON_DIR
from schemas.errors import field_errors
from schemas.events import (
    BroadcastRelease,
    CaseResolution,
    Event,
    MissingChildReport,
    parse_event,
    parse_event_obj,
)

NURSE_REPORT: dict[str, Any] = {
    "event_id": "6f1c2a4e-8d2b-4c4e-9f61-0c1d2e3f4a5b",
    "kind": "medical_staff_suspects_trafficking",
    "jurisdiction": "yunyang",
    "occurred_at": "2026-11-20T08:00:00+08:00",
    "reported_at": "2026-11-20T08:20:00+08:00",
    "reporter": {"agency": "health", "role": "medical_staff"},
    "person": {"age": 0, "sex": "female", "nationality": "CN", "disability": "none"},
    "description": "Newborn brought in by a couple who cannot show a birth certificate.",
}


def errors_of(obj: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        parse_event_obj(obj)
    return {e.field: e.reason for e in field_errors(info.value)}


def test_the_issue_example_event_is_valid() -> None:
    event = parse_event(json.dumps(NURSE_REPORT))
    assert type(event) is Event
    assert event.person is not None and event.person.is_child is True


def test_kind_picks_the_model() -> None:
    missing = {**NURSE_REPORT, "kind": "child_missing_reported",
               "reporter": {"agency": None, "role": "parent_or_guardian"},
               "last_seen_at": "2026-11-20T07:30:00+08:00", "last_seen_location": {"place": "西安市"}}
    assert isinstance(parse_event_obj(missing), MissingChildReport)
    resolved = {**NURSE_REPORT, "kind": "case_resolved", "case_id": str(uuid.uuid4()), "outcome": "found_alive"}
    assert isinstance(parse_event_obj(resolved), CaseResolution)
    release = {**NURSE_REPORT, "kind": "missing_child_info_release", "case_id": str(uuid.uuid4()),
               "guardian_consent": True, "public_contact": "110"}
    assert isinstance(parse_event_obj(release), BroadcastRelease)


def test_errors_name_the_field_and_the_reason() -> None:
    errors = errors_of({**NURSE_REPORT, "jurisdiction": "atlantis", "person": {"age": -1}})
    assert errors["jurisdiction"].startswith("unknown jurisdiction 'atlantis'")
    assert "person.age" in errors and "greater than or equal to 0" in errors["person.age"]


def test_unknown_kind_and_agency_are_refused() -> None:
    errors = errors_of({**NURSE_REPORT, "kind": "alien_abduction", "reporter": {"agency": "nasa", "role": "x"}})
    assert errors == {"kind": "unknown event kind 'alien_abduction'",
                      "reporter.agency": "unknown agency code 'nasa'"}


def test_missing_child_report_needs_last_seen_fields_and_a_child() -> None:
    base = {**NURSE_REPORT, "kind": "child_missing_reported"}
    errors = errors_of(base)
    assert set(errors) == {"last_seen_at", "last_seen_location"}
    errors = errors_of({**base, "last_seen_at": "2026-11-20T07:30:00+08:00", "last_seen_location": {},
                        "person": {"age": 30}})
    assert "less than or equal to 17" in errors["person.age"]


def test_error_messages_never_echo_the_input_value() -> None:
    secret = "610113201903150012"
    with pytest.raises(ValidationError) as info:
        parse_event_obj({**NURSE_REPORT, "person": {"id_number": secret, "age": "old"}})
    assert secret not in json.dumps([e.model_dump() for e in field_errors(info.value)])


def test_timestamps_need_a_timezone_and_an_order() -> None:
    errors = errors_of({**NURSE_REPORT, "occurred_at": "2026-11-20T08:00:00"})
    assert "occurred_at" in errors
    errors = errors_of({**NURSE_REPORT, "reported_at": "2026-11-19T08:00:00+08:00"})
    assert errors["(event)"] == "reported_at is earlier than occurred_at"


def test_nationality_is_iso_alpha2() -> None:
    errors = errors_of({**NURSE_REPORT, "person": {"nationality": "China"}})
    assert "^[A-Z]{2}$" in errors["person.nationality"]


def test_extra_fields_are_refused() -> None:
    assert "colour" in errors_of({**NURSE_REPORT, "colour": "blue"})


def test_event_schema_lists_the_catalog_codes() -> None:
    text = (JSON_DIR / "event.schema.json").read_text(encoding="utf-8")
    assert '"child_missing_reported"' in text and '"yunyang"' in text and '"police.command_center"' in text
