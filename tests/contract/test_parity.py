"""One validator: the published schemas accept exactly what the bus's models accept (issue #18).

Both ways, with generated data: messages generated from each published schema (hypothesis-
jsonschema) must be accepted by the model, and messages the models accept or refuse — their
examples, the demo's events, the issue's cases and random mutations of valid messages — must get
the same verdict from the schema. A rule the schema cannot state (named in its description) is
applied by the conformance kit beside it, and the test says so.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bus.demo_events import scripted_events
from schemas.contract import Published, published
from schemas.validation import validator
from tests.contract.generation import from_schema, inlined
from topics.conformance import RULE_CHECKS
from topics.examples import examples

JSON_MESSAGES = sorted(published())
EXAMPLES = examples()
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


def schema_verdict(pub: Published, message: Any) -> tuple[bool, list[tuple[str, str]]]:
    """What a client that follows the published documents concludes: the schema, then the named rules."""
    errors = [(e.json_path, e.message) for e in validator(pub.schema).iter_errors(message)]
    for rule in pub.rules:
        errors += RULE_CHECKS[rule](message)
    return not errors, errors


def model_verdict(pub: Published, message: Any) -> tuple[bool, str]:
    try:
        pub.parse(json.dumps(message, ensure_ascii=False))
    except ValidationError as exc:
        return False, str(exc)
    return True, ""


def test_every_named_rule_has_a_check_in_the_conformance_kit() -> None:
    for pub in published().values():
        assert set(pub.rules) <= set(RULE_CHECKS), pub.name


@pytest.mark.parametrize("name", JSON_MESSAGES)
def test_what_the_schema_generates_the_model_accepts(name: str) -> None:
    pub = published()[name]

    @SETTINGS
    @given(from_schema(inlined(pub.schema)))
    def check(message: Any) -> None:
        accepted, why = model_verdict(pub, message)
        schema_ok, rule_errors = schema_verdict(pub, message)
        # The only refusals allowed are the named rules' (reported_at before occurred_at).
        assert accepted == schema_ok, (json.dumps(message, ensure_ascii=False)[:500], why, rule_errors)

    check()


def _valid_cases() -> list[tuple[str, Any]]:
    cases = [(name, value) for name, values in EXAMPLES.items() for _, value in values]
    cases += [("Event", e) for e in scripted_events()]
    return cases


@pytest.mark.parametrize(("name", "message"), _valid_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_example_and_demo_message_is_valid_both_ways(name: str, message: Any) -> None:
    pub = published()[name]
    assert model_verdict(pub, message) == (True, "")
    assert schema_verdict(pub, message) == (True, [])


MISSING_CHILD = scripted_events()[0]
NURSE = scripted_events()[2]


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return out


_DELETE = object()
#: Events the schema and the router disagreed on before issue #18, and their neighbours.
REFUSED_EVENTS = {
    "reported_at before occurred_at": _with(NURSE, "reported_at", "2020-01-01T00:00:00+08:00"),
    "nationality China": _with(NURSE, "person.nationality", "China"),
    "a missing child aged 19": _with(MISSING_CHILD, "person.age", 19),
    "a missing child without last_seen_at": _with(MISSING_CHILD, "last_seen_at", _DELETE),
    "a missing child without last_seen_location": _with(MISSING_CHILD, "last_seen_location", _DELETE),
    "occurred_at as an integer": _with(NURSE, "occurred_at", 1763596800),
    "occurred_at as a number in a string": _with(NURSE, "occurred_at", "1763596800"),
    "occurred_at without an offset": _with(NURSE, "occurred_at", "2026-11-20T08:00:00"),
    "occurred_at without seconds": _with(NURSE, "occurred_at", "2026-11-20T08:00+08:00"),
    "occurred_at with a space": _with(NURSE, "occurred_at", "2026-11-20 08:00:00+08:00"),
    "occurred_at on 30 February": _with(NURSE, "occurred_at", "2026-02-30T08:00:00+08:00"),
    "age as a string": _with(NURSE, "person.age", "6"),
    "age with a fraction": _with(NURSE, "person.age", 6.5),
    "age as a boolean": _with(NURSE, "person.age", True),
    "exercise as a string": _with(NURSE, "exercise", "true"),
    "exercise as 1": _with(NURSE, "exercise", 1),
    "event_id without hyphens": _with(NURSE, "event_id", NURSE["event_id"].replace("-", "")),
    "event_id in capitals": _with(NURSE, "event_id", NURSE["event_id"].upper()),
    "event_id in braces": _with(NURSE, "event_id", "{" + NURSE["event_id"] + "}"),
    "event_id as a URN": _with(NURSE, "event_id", "urn:uuid:" + NURSE["event_id"]),
    "event_id with a newline": _with(NURSE, "event_id", NURSE["event_id"] + "\n"),
    "a padded kind": _with(MISSING_CHILD, "kind", " child_missing_reported"),
    "a kind in capitals": _with(NURSE, "kind", NURSE["kind"].upper()),
    "a padded jurisdiction": _with(NURSE, "jurisdiction", "yunyang "),
    "a padded agency": _with(NURSE, "reporter.agency", " health"),
    "a padded sex": _with(NURSE, "person.sex", "female "),
    "description as a number": _with(NURSE, "description", 5),
    "a missing-child field on another kind": _with(NURSE, "last_seen_at", "2026-11-20T07:00:00+08:00"),
    "a resolution without case_id": {**_with(NURSE, "kind", "case_resolved"), "outcome": "found_alive"},
    "schema_version 2.0": _with(NURSE, "schema_version", "2.0"),
    "schema_version 1": _with(NURSE, "schema_version", "1"),
    "schema_version as a number": _with(NURSE, "schema_version", 1.0),
    "latitude as a string": _with(MISSING_CHILD, "location.lat", "34.2"),
    "an unknown field": _with(NURSE, "colour", "blue"),
}
ACCEPTED_EVENTS = {
    "age written 6.0 (a JSON integer)": _with(NURSE, "person.age", 0.0),
    "schema_version 1.0": _with(NURSE, "schema_version", "1.0"),
    "a later minor version": _with(NURSE, "schema_version", "1.7"),
    "occurred_at in UTC with nanoseconds": _with(NURSE, "occurred_at", "2026-11-19T23:00:00.123456789Z"),
    "reported at the same instant in another offset": _with(
        _with(NURSE, "occurred_at", "2026-11-20T08:00:00+08:00"), "reported_at", "2026-11-20T00:00:00Z"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_EVENTS))
def test_the_issue_cases_are_refused_by_both(case: str) -> None:
    pub = published()["Event"]
    message = REFUSED_EVENTS[case]
    assert model_verdict(pub, message)[0] is False
    assert schema_verdict(pub, message)[0] is False


@pytest.mark.parametrize("case", sorted(ACCEPTED_EVENTS))
def test_values_json_allows_are_accepted_by_both(case: str) -> None:
    pub = published()["Event"]
    message = ACCEPTED_EVENTS[case]
    assert model_verdict(pub, message) == (True, "")
    assert schema_verdict(pub, message) == (True, [])


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


_TRICKY = st.sampled_from([
    "", " ", "6", "true", "null", "CN", "China", "cn", "lead", " lead", "acknowledged", "rejected", "done",
    "child_missing_reported", " child_missing_reported", "xian", "police", "police.command_center",
    "6f1c2a4e-8d2b-4c4e-9f61-0c1d2e3f4a5b", "6F1C2A4E-8D2B-4C4E-9F61-0C1D2E3F4A5B",
    "6f1c2a4e8d2b4c4e9f610c1d2e3f4a5b", "2026-11-20T08:00:00+08:00", "2026-11-20T08:00:00Z", "2026-11-20",
    "2026-11-20T08:00:00", "2026-11-20t08:00:00z", "2026-02-29T08:00:00Z", "2024-02-29T08:00:00Z",
    "1.0", "2.0", "1.12", "01.0", "a\n", "\t", "found_alive", "female",
])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 200) | st.floats(-200, 200, allow_nan=False) | _TRICKY
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3) | _TRICKY, inner, max_size=2),
    max_leaves=4,
)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_mutated_messages_get_the_same_verdict_from_schema_and_model(name: str) -> None:
    pub = published()[name]
    originals = [value for _, value in EXAMPLES[name]]

    @SETTINGS
    @given(st.data())
    def check(data: st.DataObject) -> None:
        message = copy.deepcopy(data.draw(st.sampled_from(originals)))
        paths = _paths(message)
        operation = data.draw(st.sampled_from(["replace", "delete", "add"] if paths else ["add"]))
        if operation == "add":
            target = message if not isinstance(message, list) else message[0]
            target[data.draw(st.text(max_size=4) | _TRICKY)] = data.draw(_JSON)
        else:
            *parents, leaf = data.draw(st.sampled_from(paths))
            node = message
            for p in parents:
                node = node[p]
            if operation == "delete":
                del node[leaf]
            else:
                node[leaf] = data.draw(_JSON)
        accepted, why = model_verdict(pub, message)
        schema_ok, errors = schema_verdict(pub, message)
        assert accepted == schema_ok, (json.dumps(message, ensure_ascii=False)[:600], why[:600], errors[:5])

    check()
