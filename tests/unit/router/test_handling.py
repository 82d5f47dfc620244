"""The router's per-message step, without a broker: what goes where for each kind of input."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import pytest

from bus.demo_events import INVALID_EVENT, scripted_events
from rules.deadlines import Deadlines
from rules.engine import WrittenReferral, load_rulebook
from schemas.events import Event
from schemas.referrals import DeadLetter, Referral
from services.router.handling import Outgoing, Position, Refused, Routed, Router
from topics.catalog import DEAD_LETTERS

HERE = Position("events.inbound", 2, 41)


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load_rulebook(), Deadlines.load())


def payload(n: int = 0) -> bytes:
    return json.dumps(scripted_events()[n], ensure_ascii=False).encode()


def test_a_valid_event_becomes_one_message_per_referral_on_the_agency_topic(router: Router) -> None:
    outcome = router.handle(payload(0), HERE)
    assert isinstance(outcome, Routed)
    assert outcome.referrals, "a missing child in 西安 must be referred"
    assert [m.topic for m in outcome.messages] == [f"referrals.{r.agency}" for r in outcome.referrals]
    for message, referral in zip(outcome.messages, outcome.referrals, strict=True):
        assert Referral.model_validate_json(message.value) == referral
        assert message.key == str(referral.case_id or referral.event_id).encode()


def test_routing_the_same_message_twice_gives_identical_output(router: Router) -> None:
    raw = payload(2)
    first, again = router.handle(raw, HERE), router.handle(raw, HERE)
    assert isinstance(first, Routed) and isinstance(again, Routed)
    assert first.messages == again.messages


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"{not json", "invalid_json"), (b"\xff\xfe", "invalid_json"), (None, "empty_message"),
     (INVALID_EVENT, "invalid_event"), (b"[]", "invalid_event")],
)
def test_bad_input_goes_to_the_dead_letter_topic_with_reason_and_original_bytes(
        router: Router, raw: bytes | None, reason: str) -> None:
    outcome = router.handle(raw, HERE)
    assert isinstance(outcome, Refused)
    (message,) = outcome.messages
    assert message.topic == DEAD_LETTERS.name
    letter = DeadLetter.model_validate_json(message.value)
    assert letter.reason == reason
    assert base64.b64decode(letter.original_b64) == (raw or b"")
    assert (letter.topic, letter.partition, letter.offset) == ("events.inbound", 2, 41)


def test_a_dead_letter_names_each_field_and_keeps_the_event_id_when_readable(router: Router) -> None:
    event = scripted_events()[1]
    event["jurisdiction"] = "atlantis"
    outcome = router.handle(json.dumps(event).encode(), HERE)
    assert isinstance(outcome, Refused)
    assert outcome.dead_letter.event_id == event["event_id"]
    assert outcome.dead_letter.errors == [
        {"field": "jurisdiction", "reason": outcome.dead_letter.errors[0]["reason"]}]
    # The reason is a fixed text: pydantic's own message would repeat what the sender wrote.
    assert outcome.dead_letter.errors[0]["reason"] == "unknown jurisdiction"
    assert "atlantis" not in outcome.dead_letter.model_dump_json(exclude={"original_b64"})


def test_emitters_add_their_messages_after_the_referrals() -> None:
    def receipt(event: Event, referrals: Sequence[WrittenReferral]) -> list[Outgoing]:
        return [Outgoing("events.receipts", str(event.event_id).encode(), str(len(referrals)).encode())]

    router = Router(load_rulebook(), Deadlines.load(), (receipt,))
    outcome = router.handle(payload(4), HERE)
    assert isinstance(outcome, Routed)
    assert outcome.messages[-1].topic == "events.receipts"
    assert outcome.messages[-1].value == str(len(outcome.referrals)).encode()
