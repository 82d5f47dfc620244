"""An answer the alerts service refuses is told to the agency that gave it, on its own
`agency.<code>.refusals`, when the service knows who gave it: an answer it could read, on the
answers topic, which only the bus's services write (the intake and the console, each for the
agency it authenticated). Nothing else is told: not what is no answer (anyone's name may be in
it), not the legacy topic's, not an answer refused long after it was read (parked)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import pytest

from bus.boundary import Position
from schemas.alerts import ReferralResponse, dump
from schemas.notices import RefusalNotice
from topics import catalog as topics
from topics.catalog import LEGACY_ANSWERS_TOPIC, key_of, refusals_topic_name

from .conftest import T0, tracked_alert
from .fakes import Service, service

CENTRE = "police.command_center"
RECEIVED = T0 + dt.timedelta(minutes=1)
READ_AT = Position(topics.ANSWERS.name, 2, 77)


@pytest.fixture
def running() -> Service:
    return service()


def _tracked_alert(running: Service) -> tuple[uuid.UUID, uuid.UUID]:
    return tracked_alert(running.handlers)


def _answer(running: Service, raw: bytes, position: Position | None = READ_AT) -> str:
    outcome: str = asyncio.run(running.handlers.on_response(raw, RECEIVED.timestamp(), position))
    return outcome


def _notices(running: Service) -> list[tuple[str, bytes, RefusalNotice]]:
    return [(t, k, RefusalNotice.model_validate_json(v)) for t, k, v in running.sender.sent
            if t.startswith("agency.") and t.endswith(".refusals")]


def _refusals(running: Service) -> list[dict[str, object]]:
    return [json.loads(v) for t, _, v in running.sender.sent if t == topics.ANSWERS_REFUSED.name]


def test_an_answer_the_agency_may_not_give_is_told_to_that_agency(running: Service) -> None:
    _, lead_id = _tracked_alert(running)
    youth = ReferralResponse(referral_id=lead_id, answer="accepted", agency="youth_league")
    assert _answer(running, dump(youth)) == "not_entitled"
    ((topic, key, notice),) = _notices(running)
    (record,) = _refusals(running)
    assert topic == refusals_topic_name("youth_league")
    assert (notice.message, notice.reason, notice.response_id, notice.referral_id) == (
        "answer", "not_entitled", str(youth.response_id), str(lead_id))
    assert (notice.topic, notice.partition, notice.offset) == tuple(READ_AT)
    assert (record["topic"], record["offset"]) == (READ_AT.topic, READ_AT.offset)
    # Dated as its record: when the bus received the answer, and when it was refused.
    assert notice.received_at == RECEIVED
    assert notice.model_dump(mode="json")["refused_at"] == record["refused_at"]
    assert key == key_of("refused_position", notice.model_dump(mode="json"))


def test_an_answer_overtaken_by_another_desk_is_told_to_its_agency(running: Service) -> None:
    alert_id, _ = _tracked_alert(running)
    first = ReferralResponse(referral_id=alert_id, answer="accepted", agency=CENTRE)
    late = ReferralResponse(referral_id=alert_id, answer="acknowledged", agency=CENTRE)
    assert _answer(running, dump(first)) == "applied"
    assert _answer(running, dump(late), Position(topics.ANSWERS.name, 2, 78)) == "no_effect"
    ((topic, _, notice),) = _notices(running)
    assert (topic, notice.reason, notice.response_id, notice.offset) == (
        refusals_topic_name(CENTRE), "no_effect", str(late.response_id), 78)


@pytest.mark.parametrize("raw", [
    b'{"referral_id": "not-a-uuid", "answer": "accepted", "agency": "police.command_center"}',  # no answer
    b"ACK",
])
def test_what_is_no_answer_is_told_to_nobody_whatever_name_it_bears(running: Service, raw: bytes) -> None:
    _tracked_alert(running)
    _answer(running, raw)
    assert len(_refusals(running)) == 1 and _notices(running) == []


def test_an_answer_on_the_legacy_topic_or_without_a_position_is_not_told(running: Service) -> None:
    _, lead_id = _tracked_alert(running)
    for position in (Position(LEGACY_ANSWERS_TOPIC, 0, 1), None):
        answer = ReferralResponse(referral_id=lead_id, answer="accepted", agency="youth_league")
        assert _answer(running, dump(answer), position) == "not_entitled"
    assert len(_refusals(running)) == 2 and _notices(running) == []


def test_an_answer_refused_when_its_parking_window_ends_is_not_told(running: Service) -> None:
    unknown = uuid.uuid4()
    answer = ReferralResponse(referral_id=unknown, answer="acknowledged", agency=CENTRE)
    assert _answer(running, dump(answer)) == "parked"
    later = running.handlers.clock() + dt.timedelta(seconds=running.handlers.config.park_seconds + 1)
    assert asyncio.run(running.handlers.expire_parked(later)) == 1
    assert [r["reason"] for r in _refusals(running)] == ["unknown_id"] and _notices(running) == []


def test_an_agency_without_a_refusals_topic_is_not_told(running: Service) -> None:
    """An abolished agency has no topic (`topics create` makes current agencies' only): sending
    there would stop the worker on an answer."""
    _, lead_id = _tracked_alert(running)
    running.handlers._current_agencies = frozenset({CENTRE})
    answer = ReferralResponse(referral_id=lead_id, answer="accepted", agency="youth_league")
    assert _answer(running, dump(answer)) == "not_entitled"
    assert len(_refusals(running)) == 1 and _notices(running) == []
