"""The trust boundary itself (bus/boundary.py): limits, reasons, digests, dead letters."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid

import pytest

from bus.boundary import (
    EVENT,
    KEEP_ORIGINAL_BYTES,
    MAX_FIELDS,
    PREFIX_BYTES,
    Limits,
    Position,
    Refusal,
    dead_letter,
    digest,
    fault,
    reason_for,
    shown_id,
)
from tests.hostile import hospital_report

MARK = "Zq9mark"


def refusal(raw: bytes | None) -> Refusal:
    decoded = EVENT.decode(raw)
    assert isinstance(decoded, Refusal), decoded
    return decoded


def test_a_valid_event_passes() -> None:
    event = hospital_report()
    decoded = EVENT.decode(json.dumps(event).encode())
    assert not isinstance(decoded, Refusal) and str(decoded.event_id) == event["event_id"]


@pytest.mark.parametrize(("raw", "reason"), [
    (None, "empty_message"), (b"", "empty_message"),
    (b"x" * (64 * 1024 + 1), "too_large"),
    (json.dumps({"a": list(range(2000))}).encode(), "too_large"),  # more values than any event has
    (b"[" * 9 + b"1" + b"]" * 9, "too_deep"), (b"[" * 300 + b"]" * 300, "too_deep"),
    (b"\xff", "invalid_json"), (b'{"a": NaN}', "invalid_json"), (b"[1e999]", "invalid_json"),
    (b'["\\ud800"]', "invalid_json"),
    (json.dumps({"a": "x" * 8193}).encode(), "invalid_string"),
    (json.dumps({"k" * 65: 1}).encode(), "invalid_string"),
    (json.dumps({"a": "\u2066"}).encode(), "invalid_string"),
    (json.dumps({"a\x01": 1}).encode(), "invalid_string"),
    (b"{}", "invalid_event"),
])
def test_each_kind_of_bad_message_has_its_reason(raw: bytes | None, reason: str) -> None:
    assert refusal(raw).reason == reason


def test_tabs_and_newlines_are_text() -> None:
    assert not isinstance(EVENT.decode(json.dumps(hospital_report(description="a\tb\r\nc")).encode()), Refusal)


def test_limits_are_per_contract() -> None:
    from pydantic import TypeAdapter

    from bus.boundary import Contract

    small = Contract(TypeAdapter(dict[str, int]), invalid="invalid_thing", limits=Limits(max_depth=1))
    assert small.decode(b'{"a": 1}') == {"a": 1}
    bad = small.decode(b'{"a": [1]}')
    assert isinstance(bad, Refusal) and bad.reason == "too_deep"


def test_an_unknown_field_is_named_by_a_digest_the_sender_can_compute() -> None:
    found = refusal(json.dumps({**hospital_report(), f"{MARK}key": 1}).encode())
    expected = "sha256:" + hashlib.sha256(f"{MARK}key".encode()).hexdigest()[:12]
    assert {"field": expected, "reason": "not a field of this message"} in [f.model_dump() for f in found.fields]


def test_union_tags_are_not_fields() -> None:
    found = refusal(json.dumps(hospital_report(kind="case_resolved")).encode())
    assert {f.field for f in found.fields} >= {"case_id", "outcome"}
    assert not any("case_resolved" in f.field for f in found.fields)


def test_reasons_drop_what_the_validators_quote() -> None:
    found = refusal(json.dumps(hospital_report(kind=f"{MARK}kind", jurisdiction=f"{MARK} (known: x)")).encode())
    assert {(f.field, f.reason) for f in found.fields} == {("kind", "unknown event kind"),
                                                            ("jurisdiction", "unknown jurisdiction")}


def test_a_reason_that_would_repeat_the_sender_falls_back_to_a_fixed_text() -> None:
    # The sender wrote the words of the validator's message itself: the message is not used.
    found = refusal(json.dumps(hospital_report(kind="unknown event kind", description="unknown event kind")).encode())
    assert [f.reason for f in found.fields if f.field == "kind"] == ["invalid value"]
    assert reason_for("uuid_parsing", "Input should be a valid UUID, found `Z` at 1") == "not a valid UUID"


def test_at_most_max_fields_are_listed() -> None:
    found = refusal(json.dumps({**hospital_report(), **{f"x{i}": i for i in range(100)}}).encode())
    assert len(found.fields) == MAX_FIELDS and found.fields[-1].field == "(more)"


def test_ids_are_shown_canonically_or_as_a_digest() -> None:
    upper = str(uuid.uuid4()).upper()
    assert shown_id(upper) == upper.lower()
    assert shown_id(f"{MARK}") == digest(MARK) and digest(MARK).startswith("sha256:") and len(digest(MARK)) == 19
    assert shown_id(12) == digest("12") and shown_id(None) is None
    found = refusal(json.dumps(hospital_report(event_id=f"{MARK}-id", kind="nope")).encode())
    assert found.event_id == digest(f"{MARK}-id")


def test_the_reporter_agency_of_a_refusal_is_a_known_code_or_nothing() -> None:
    assert refusal(json.dumps(hospital_report(kind="nope")).encode()).reporter_agency \
        == "health.designated_medical_institution"
    assert refusal(json.dumps(hospital_report(kind="nope", reporter={"agency": MARK, "role": "x"})).encode()) \
        .reporter_agency is None


def test_a_dead_letter_keeps_a_bounded_original() -> None:
    at, where = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), Position("events.inbound", 1, 2)
    small = b'{"a": 1}'
    letter = dead_letter(Refusal("invalid_event"), small, where, at)
    assert base64.b64decode(letter.original_b64) == small and letter.original_prefix_b64 is None
    big = b"y" * (KEEP_ORIGINAL_BYTES + 1)
    letter = dead_letter(Refusal("too_large"), big, where, at)
    assert letter.original_b64 == "" and base64.b64decode(letter.original_prefix_b64 or "") == big[:PREFIX_BYTES]
    assert (letter.original_size, letter.original_sha256) == (len(big), hashlib.sha256(big).hexdigest())


def test_the_last_resort_names_the_error_and_where_never_its_message() -> None:
    try:
        raise ValueError(f"description was {MARK}")
    except ValueError as exc:
        found = fault("route", exc)
    assert found.reason == "internal_error"
    assert "ValueError" in found.fields[0].reason and "tests/unit/test_boundary.py:" in found.fields[0].reason
    assert MARK not in found.fields[0].reason
