"""Issue #18: what the router accepts is what the published schema accepts, and a message says
which version of its schema it follows."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bus.demo_events import scripted_events
from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from schemas.receipts import Receipt
from services.router.handling import Position, Refused, Routed, Router
from services.router.outputs import AuditEmitter, ReceiptEmitter
from topics.catalog import RECEIPTS

HERE = Position("events.inbound", 0, 7)


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load_rulebook(), Deadlines.load(), (ReceiptEmitter(), AuditEmitter()))


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


def receipts(outcome: Routed | Refused) -> list[Receipt]:
    return [Receipt.model_validate_json(m.value) for m in outcome.messages if m.topic == RECEIPTS.name]


def test_an_event_id_without_hyphens_is_refused_not_routed_under_the_hyphenated_form(router: Router) -> None:
    """Before: routed, and its receipt filed under the hyphenated form, where the reporter never looks.
    Now refused; an id that is not a UUID is shown only as a digest, and no receipt is filed for it
    (bus/boundary.py)."""
    event = scripted_events()[2]
    sent = event["event_id"].replace("-", "")
    outcome = router.handle(raw({**event, "event_id": sent}), HERE)
    assert isinstance(outcome, Refused)
    assert [e["field"] for e in outcome.dead_letter.errors] == ["event_id"]
    assert all(r.status == "refused" and r.event_id != event["event_id"] for r in receipts(outcome))


def test_a_padded_kind_is_refused_not_routed_as_a_generic_event(router: Router) -> None:
    event = {**scripted_events()[0], "kind": " child_missing_reported"}
    outcome = router.handle(raw(event), HERE)
    assert isinstance(outcome, Refused)
    assert outcome.dead_letter.reason == "invalid_event"
    assert "kind" in {e["field"] for e in outcome.dead_letter.errors}


@pytest.mark.parametrize(("field", "value"), [("occurred_at", 1763596800), ("exercise", "true")])
def test_values_of_another_json_type_are_refused(router: Router, field: str, value: Any) -> None:
    outcome = router.handle(raw({**scripted_events()[2], field: value}), HERE)
    assert isinstance(outcome, Refused) and [e["field"] for e in outcome.dead_letter.errors] == [field]


def test_a_string_age_is_refused(router: Router) -> None:
    event = scripted_events()[2]
    outcome = router.handle(raw({**event, "person": {**event["person"], "age": "6"}}), HERE)
    assert isinstance(outcome, Refused) and [e["field"] for e in outcome.dead_letter.errors] == ["person.age"]


def test_an_unknown_major_version_is_a_dead_letter_of_its_own_reason(router: Router) -> None:
    outcome = router.handle(raw({**scripted_events()[1], "schema_version": "2.0"}), HERE)
    assert isinstance(outcome, Refused)
    assert outcome.dead_letter.reason == "unsupported_schema_version"
    (error,) = outcome.dead_letter.errors
    assert error["field"] == "schema_version" and "reads 1.x" in error["reason"]
    (receipt,) = receipts(outcome)
    assert receipt.refusal_reason == "unsupported_schema_version"


def test_a_known_version_or_none_is_routed_and_everything_produced_carries_its_version(router: Router) -> None:
    for version in ({}, {"schema_version": "1.0"}, {"schema_version": "1.3"}):
        outcome = router.handle(raw({**scripted_events()[0], **version}), HERE)
        assert isinstance(outcome, Routed)
        for message in outcome.messages:
            assert json.loads(message.value)["schema_version"] == "1.0", message.topic
