"""The trust boundary itself (bus/boundary.py): limits, reasons, digests, dead letters."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.boundary import (
    EVENT,
    KEEP_ORIGINAL_BYTES,
    MAX_FIELDS,
    PREFIX_BYTES,
    Contract,
    Limits,
    Position,
    Refusal,
    _passes,
    _screen,
    dead_letter,
    digest,
    fault,
    reason_for,
    shown_id,
)
from tests.hostile import any_text, hospital_report, json_values, missing_child
from tests.hostile import messages as hostile_messages

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


@pytest.mark.parametrize("ending", ["\n", "\r\n", " ", "\t"])
def test_an_id_with_something_after_it_is_refused_and_shown_as_a_digest(ending: str) -> None:
    """A UUID followed by a line break is not a UUID: the event is refused (the decoder never
    raises) and the id is shown as a digest, not cut back to the UUID it starts with."""
    written = f"{uuid.uuid4()}{ending}"
    assert shown_id(written) == digest(written)
    decoded = EVENT.decode(json.dumps(hospital_report(event_id=written)).encode())
    assert isinstance(decoded, Refusal) and decoded.reason == "invalid_event"
    assert decoded.event_id == digest(written) and [f.field for f in decoded.fields] == ["event_id"]


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


@settings(max_examples=500, deadline=None)
@given(st.one_of(json_values, st.builds(lambda v: {"deep": [[[[[[[[v]]]]]]]]}, json_values),
                 st.lists(any_text, max_size=5), st.dictionaries(any_text, json_values, max_size=5)))
def test_the_quick_screen_passes_exactly_what_the_full_screen_passes(obj: Any) -> None:
    """A message is decoded after one quick pass when it has nothing wrong; the full screen,
    which words refusals, decides otherwise: both must agree on every message."""
    for limits in (Limits(), Limits(max_depth=2, max_string_chars=5, max_key_chars=3, max_values=12)):
        assert _passes(obj, limits) == (not isinstance(_screen(obj, limits, frozenset()), Refusal)), obj


def test_the_quick_screen_catches_each_kind_of_fault() -> None:
    limits = Limits(max_depth=2, max_string_chars=5, max_key_chars=3, max_values=12)
    good = {"abc": ["12345", 1.5, None, {}], "de": {"f": 2}}
    assert _passes(good, limits) and not isinstance(_screen(good, limits, frozenset()), Refusal)
    for bad in ({"abc": [[["x"]]]}, {"abc": "123456"}, {"abcd": 1}, {"a": "\u202e"}, {"\x00": 1},
                {"a": float("inf")}, list(range(12)), "\ud800"):
        assert not _passes(bad, limits), bad
        assert isinstance(_screen(bad, limits, frozenset()), Refusal), bad


def _parsed(raw: bytes) -> Any:
    try:
        return pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError:
        return _UNPARSED


_UNPARSED = object()
_ROOMY = Limits(max_depth=2, max_string_chars=10_000, max_key_chars=3, max_values=12)


@settings(max_examples=500, deadline=None)
@given(st.one_of(json_values, st.builds(lambda v: {"deep": [[[[[[[[v]]]]]]]]}, json_values),
                 st.lists(any_text, max_size=5), st.dictionaries(any_text, json_values, max_size=5)),
       st.booleans())
def test_the_screen_decides_alike_with_the_bytes_or_without(obj: Any, ascii_only: bool) -> None:
    """Given the bytes a message was parsed from, the screen settles the strings on them when it
    can: it must come to the same answer as over the parsed strings themselves."""
    raw = json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    parsed = _parsed(raw)
    if parsed is _UNPARSED:
        return
    for limits in (Limits(), _ROOMY, Limits(max_depth=2, max_string_chars=5, max_key_chars=3, max_values=12)):
        assert _passes(parsed, limits, raw) == _passes(parsed, limits), raw


@pytest.mark.parametrize("raw", [
    b'{"a": "\\u202e"}', b'{"a": "\\u202E"}', '{"a": "\u202e"}'.encode(), '{"a": "\u2067"}'.encode(),
    b'{"a": "\\b"}', b'{"a": "\\f"}', b'{"a": "\\u0000"}', b'{"a": "\\u001f"}', b'{"a": "\\u007f"}',
    b'{"a": "\x7f"}', b'{"a": "\\u0085"}', '{"a": "\x85"}'.encode(), b'{"a": "\\uffff"}', b'{"a": "\\uFFFE"}',
    '{"a": "\ufffe"}'.encode(), b'{"\\u202e": 1}', '{"\u202e": 1}'.encode(), b'{"a": ["\\u0008"]}',
])
def test_bytes_that_stand_for_a_bad_character_are_never_settled(raw: bytes) -> None:
    parsed = _parsed(raw)
    assert parsed is not _UNPARSED
    assert not _passes(parsed, Limits(), raw)
    assert isinstance(_screen(parsed, Limits(), frozenset()), Refusal)


@pytest.mark.parametrize("raw", [
    b'{"a": "\\t\\n\\r\\"\\\\\\/"}', b'{"a": "\\ud83d\\ude00"}', '{"a": "\u00b7\u201c\u4e2d\u2065"}'.encode(),
    b'{"a": "\\u00b7\\u201c\\u4e2d"}',
])
def test_harmless_escapes_and_characters_pass(raw: bytes) -> None:
    parsed = _parsed(raw)
    assert _passes(parsed, Limits(), raw) and not isinstance(_screen(parsed, Limits(), frozenset()), Refusal)


@pytest.mark.parametrize("raw", [
    b'{"a": "x\x01y"}', b'{"a\x1f": 1}', b'{"a": "x\ty"}', b'{"a": "\xc0\x80"}', b'{"a": "\xe0\x82\x85"}',
    b'{"a": "\xed\xa0\x80"}', b'{"a": "\xff"}', b'{"a": "\\ud800"}', b'{"a": "\\udc00x"}', b'{"\\ud800": 1}',
])
def test_the_parser_refuses_what_the_bytes_check_leaves_to_it(raw: bytes) -> None:
    """`_BAD_BYTES` leaves raw C0 controls, ill-formed UTF-8 (an encoded surrogate, an overlong
    form) and lone surrogate escapes to the parser: it must go on refusing them."""
    assert _parsed(raw) is _UNPARSED
    assert refusal(raw).reason == "invalid_json"


_BY_UNION: Contract[Any] = Contract(EVENT.adapter, invalid="invalid_event")


@settings(max_examples=400, deadline=None)
@given(hostile_messages)
def test_picking_the_events_member_decides_as_the_union_does(raw: bytes) -> None:
    """EVENT validates the member its discriminator picks on the parsed message; the union alone
    must come to the same event or the same refusal."""
    assert EVENT.members is not None
    ours, theirs = EVENT.decode(raw), _BY_UNION.decode(raw)
    if isinstance(ours, Refusal):
        assert ours == theirs
    else:
        assert not isinstance(theirs, Refusal) and type(ours) is type(theirs) and ours == theirs


@pytest.mark.parametrize("changes", [
    {}, {"kind": "case_resolved"}, {"kind": "medical_staff_suspects_trafficking"}, {"kind": "no_such_kind"},
    {"kind": None}, {"kind": ["child_missing_reported"]}, {"details": {"kind": "case_resolved"}},
    # What the plain event would accept, and the missing-child report does not.
    {"last_seen_at": None, "last_seen_location": None}, {"person": None, "last_seen_at": None},
    {"kind": "no_such_kind", "last_seen_at": None, "last_seen_location": None},
])
def test_a_member_picked_by_kind_is_the_unions_member(changes: dict[str, Any]) -> None:
    """(A None in `changes` drops the field.)"""
    event = {k: v for k, v in missing_child(**changes).items() if v is not None}
    raw = json.dumps(event).encode()
    assert EVENT.decode(raw) == _BY_UNION.decode(raw)
