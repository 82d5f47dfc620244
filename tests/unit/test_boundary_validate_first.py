"""An event validated before it is parsed (`Contract._validated_first`, bus/boundary.py) decodes
exactly as it does when parsed and screened first: same model, or same refusal, for valid,
malformed and hostile messages alike."""

from __future__ import annotations

import json
import types
import typing
import uuid
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from bus.boundary import (
    _EVENT_MODELS,
    EVENT,
    Contract,
    Limits,
    Refusal,
    _event_tag_in_bytes,
    _event_within,
    _passes,
)
from bus.demo_events import scripted_events
from schemas.events import (
    _MEMBERS,
    EVENT_ADAPTER,
    EVENT_MEMBERS,
    Event,
    Location,
    Person,
    Reporter,
    validate_natively,
)
from tests.hostile import dumps, hospital_report, inbound_corpus, missing_child, mutated_events, release
from tests.hostile import messages as hostile_messages

#: The same contract, every message parsed and screened before it is validated.
PLAIN: Contract[Event] = Contract(EVENT_ADAPTER, invalid="invalid_event", members=EVENT_MEMBERS)
TIGHT = Limits(max_depth=3, max_string_chars=600, max_key_chars=20, max_values=60)


def outcome(contract: Contract[Event], raw: bytes | None) -> tuple[str, Any]:
    decoded = contract.decode(raw)
    if isinstance(decoded, Refusal):
        return "refused", decoded
    return type(decoded).__name__, decoded.model_dump_json()


def assert_alike(raw: bytes | None, *, every_limit: bool = True) -> None:
    assert outcome(EVENT, raw) == outcome(PLAIN, raw), raw
    others = (TIGHT, Limits(max_depth=2), Limits(max_values=40), Limits(max_key_chars=8))
    for limits in others if every_limit else others[:1]:
        fast = Contract(EVENT_ADAPTER, invalid="invalid_event", members=EVENT_MEMBERS, limits=limits,
                        validate_first=EVENT.validate_first)
        plain = Contract(EVENT_ADAPTER, invalid="invalid_event", members=EVENT_MEMBERS, limits=limits)
        assert outcome(fast, raw) == outcome(plain, raw), (raw, limits)


def _demo() -> list[bytes]:
    return [json.dumps(e, ensure_ascii=ascii_only).encode() for e in scripted_events(run=uuid.UUID(int=3))
            for ascii_only in (False, True)]


def test_valid_events_are_validated_first_and_decode_alike() -> None:
    for raw in _demo():
        assert EVENT._validated_first(raw, EVENT.validate_first) is not None, raw  # type: ignore[arg-type]
        assert_alike(raw)


@pytest.mark.parametrize("raw", [
    # beyond a limit the screen counts, in an otherwise valid event
    dumps(hospital_report(details={str(i): i for i in range(600)})),
    dumps(hospital_report(details={str(i): i for i in range(20)})),
    dumps(hospital_report(details={"k" * 65: 1})),
    dumps(hospital_report(details={"k" * 9: 1})),
    dumps(missing_child(person={"age": 5, "wishes": ["unknown"] * 1100})),
    dumps(missing_child(person={"age": 5, "wishes": ["unknown"] * 30})),
    dumps(hospital_report(description="x" * 9000)),
    # what the parser alone refuses
    dumps(hospital_report()).replace(b'"description": "', b'"description": "\xff', 1),
    dumps(hospital_report()).replace(b'"description": "', b'"description": "\xed\xa0\x80', 1),
    dumps(hospital_report()).replace(b'"description": "', b'"description": "\\ud800', 1),
    dumps(hospital_report()).replace(b'"description": "', b'"description": "\t', 1),
    dumps(hospital_report()) + b"x",
    dumps(hospital_report(details={"n": 1.5}))[:-1] + b', "details": {"n": NaN}}',
    dumps(hospital_report(details={"n": 1.5})).replace(b"1.5", b"1e400"),
    dumps(hospital_report(details={"n": 1.5})).replace(b"1.5", b"Infinity"),
    dumps(missing_child()).replace(b'"age": 5', b'"age": 5.0'),
    # the kind: another one earlier in the bytes, twice, or none the bytes show plainly
    dumps({"details": {"kind": "case_resolved"}, **hospital_report()}),
    dumps({"details": {"kind": "child_missing_reported"}, **missing_child()}),
    dumps(missing_child())[:-1] + b', "kind": "hospital_suspected_abuse"}',
    dumps(hospital_report())[:-1] + b', "kind": "child_missing_reported"}',
    dumps(hospital_report()).replace(b'"kind": "', b'"kind": "x", "kind": "', 1),
    dumps(missing_child(kind="\u0063hild_missing_reported")).replace(b'"child_missing', b'"\\u0063hild_missing'),
    dumps(release(str(uuid.uuid4()))),
    dumps({**release(str(uuid.uuid4())), "kind": "case_resolved", "outcome": "found_alive"}),
    dumps({key: value for key, value in {**release(str(uuid.uuid4())), "kind": "case_resolved",
                                         "outcome": "found_alive"}.items()
           if key not in ("guardian_consent", "public_contact")}),
])
def test_messages_at_the_edges_decode_alike(raw: bytes) -> None:
    assert_alike(raw)


def test_the_hostile_corpus_decodes_alike() -> None:
    for _, raw in inbound_corpus():
        assert_alike(raw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_messages)
def test_any_message_decodes_alike(raw: bytes) -> None:
    assert_alike(raw, every_limit=False)


def encoded(event: dict[str, Any], ascii_only: bool) -> bytes:
    """`event` as a sender might write it; an event hypothesis built with a lone surrogate that
    `ensure_ascii=False` cannot encode is not a message anyone can send, so it is skipped."""
    try:
        return json.dumps(event, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    except ValueError:
        reject()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_events(), st.booleans())
def test_mutated_events_decode_alike(event: dict[str, Any], ascii_only: bool) -> None:
    assert_alike(encoded(event, ascii_only), every_limit=False)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=70), st.integers(-5, 5) | st.text(max_size=3) | st.none(), max_size=40),
       st.lists(st.sampled_from(["unknown", "return_home"]), max_size=40))
def test_within_is_sufficient_for_the_screen(details: dict[str, Any], wishes: list[str]) -> None:
    """Whenever `_event_within` passes a validated event, the screen passes the message it was
    made of (the converse need not hold: then the message is decoded as usual)."""
    raw = dumps(missing_child(details=details, person={"age": 5, "wishes": wishes}))
    decoded = PLAIN.decode(raw)
    if isinstance(decoded, Refusal):
        return
    parsed = json.loads(raw)
    for limits in (Limits(), TIGHT, Limits(max_values=80), Limits(max_key_chars=10)):
        if _event_within(decoded, limits):
            assert _passes(parsed, limits), (raw, limits)


def test_the_kind_in_the_bytes() -> None:
    assert _event_tag_in_bytes(dumps(missing_child())) == "child_missing_reported"
    assert _event_tag_in_bytes(dumps(hospital_report())) == "event"
    assert _event_tag_in_bytes(b'{"kind":"case_resolved"}') == "case_resolved"
    assert _event_tag_in_bytes(b"[]") == "event"


def _containers(annotation: Any) -> list[Any]:
    """The container types an annotation allows (models, lists, tuples, dicts), unwrapped."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _containers(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [c for arg in typing.get_args(annotation) for c in _containers(arg)]
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    if origin in (list, tuple, dict):
        return [origin]
    return []


def test_the_event_models_are_as_within_reads_them() -> None:
    """`_event_within` bounds what the screen counts from what the models allow: containers only
    at `reporter`, `person` (its `wishes` a list of codes), `location`, `last_seen_location` and
    `details` (scalars); numbers finite. A new container field must be counted there first."""
    models = _MEMBERS.values()
    assert set(models) == set(_EVENT_MODELS)
    expected = {"reporter": [Reporter], "person": [Person], "location": [Location],
                "last_seen_location": [Location], "details": [dict]}
    for model in models:
        for name, info in model.model_fields.items():
            found = _containers(info.annotation)
            if name == "person":
                assert found and all(issubclass(c, Person) for c in found), (model, name)
            else:
                assert found == expected.get(name, []), (model, name, found)
    for part in (Reporter, Location):
        assert all(not _containers(f.annotation) for f in part.model_fields.values()), part
    person_containers = {n: _containers(f.annotation) for n, f in Person.model_fields.items()}
    assert {n: c for n, c in person_containers.items() if c} == {"wishes": [tuple]}


def assert_native_agrees(raw: bytes) -> None:
    """`validate_natively` accepts only what the member accepts, and makes the same event of it."""
    for tag, member in EVENT_MEMBERS[1].items():
        native = validate_natively(tag, raw)
        if native is None:
            continue
        exact = member.validate_json(raw)  # raises if the native validator accepted more
        assert type(native) is type(exact) and native == exact, (tag, raw)
        assert native.model_dump_json() == exact.model_dump_json(), (tag, raw)
        assert native.model_fields_set == exact.model_fields_set, (tag, raw)
        assert native.person is None or (exact.person is not None and (
            native.person.model_fields_set == exact.person.model_fields_set))


def test_valid_events_are_validated_natively() -> None:
    for raw in [*_demo(), dumps(missing_child()), dumps(hospital_report(details={"n": 6, "x": "y"}))]:
        member = _event_tag_in_bytes(raw)
        assert validate_natively(member, raw) is not None, raw
        assert_native_agrees(raw)


@pytest.mark.parametrize("raw", [
    dumps(hospital_report(details={"n": 6.0, "m": 6.5, "i": -3, "b": True, "s": "6", "z": None})),
    dumps(missing_child()).replace(b'"age": 5', b'"age": 5.0'),
    dumps(missing_child()).replace(b'"age": 5', b'"age": 5.5'),
    dumps(missing_child()).replace(b'"age": 5', b'"age": true'),
    dumps(missing_child()).replace(b'"age": 5', b'"age": 18'),
    dumps(missing_child(kind="no_such_kind")), dumps(hospital_report(jurisdiction="nowhere")),
    dumps(hospital_report(reporter={"agency": "no.such.agency", "role": "x"})),
    dumps(hospital_report(reporter={"agency": None, "role": "x"})),
    dumps(hospital_report(occurred_at="2030-01-01T00:00:00+00:00")),
    dumps(hospital_report(kind="child_missing_reported")),
])
def test_the_native_validators_at_the_edges(raw: bytes) -> None:
    assert_native_agrees(raw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_events(), st.booleans())
def test_the_native_validators_never_accept_more(event: dict[str, Any], ascii_only: bool) -> None:
    assert_native_agrees(encoded(event, ascii_only))
