"""Issue #17, the answer path: only an agency an alert or referral was addressed or escalated to
answers it, at the time the bus received the answer; anything else is refused on the
refused-answers topic with its reason, counted, and changes nothing.

Each test first shows the defect as it was on main (the state changed, or nothing was said),
then what the service says now.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import pytest

from schemas.alerts import ReferralResponse, dump
from topics import catalog as topics

from .conftest import T0, missing_child, referral, tracked_alert
from .fakes import Service, service

CENTRE = "police.command_center"
#: When the bus received the answers below: their records' time.
RECEIVED = T0 + dt.timedelta(minutes=1)


@pytest.fixture
def running() -> Service:
    return service()


def _tracked_alert(running: Service) -> tuple[uuid.UUID, uuid.UUID]:
    return tracked_alert(running.handlers)


def _answer(running: Service, raw: bytes, at: dt.datetime = RECEIVED) -> str:
    outcome: str = asyncio.run(running.handlers.on_response(raw, at.timestamp()))
    return outcome


def _refusals(running: Service) -> list[dict[str, object]]:
    return [json.loads(v) for t, _, v in running.sender.sent if t == topics.ANSWERS_REFUSED.name]


def _status(running: Service, key: uuid.UUID) -> str:
    state = running.store.state(str(key))
    assert state is not None
    return state.status


def test_another_agency_cannot_accept_a_referral_addressed_to_the_police(running: Service) -> None:
    alert_id, lead_id = _tracked_alert(running)
    youth = ReferralResponse(referral_id=lead_id, answer="accepted", agency="youth_league",
                             responded_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    _answer(running, dump(youth))
    # On main the youth league's answer accepted the police's referral (and stopped the alert's escalation).
    assert _status(running, lead_id) == "sent" and _status(running, alert_id) == "sent"
    (refusal,) = _refusals(running)
    assert refusal["reason"] == "not_entitled" and refusal["agency"] == "youth_league"
    assert refusal["response_id"] == str(youth.response_id) and refusal["referral_id"] == str(lead_id)
    assert refusal["received_at"] == RECEIVED.isoformat().replace("+00:00", "Z")
    # The alert is still re-sent as if nobody had answered: nobody entitled did.
    state = running.store.state(str(alert_id))
    assert state is not None and state.ack_deadline is not None
    assert asyncio.run(running.handlers.scan_deadlines(state.ack_deadline + dt.timedelta(seconds=1))) == 1


def test_an_answer_is_dated_when_the_bus_received_it_not_when_its_sender_says(running: Service) -> None:
    alert_id, lead_id = _tracked_alert(running)
    backdated = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    _answer(running, dump(ReferralResponse(referral_id=alert_id, answer="acknowledged", agency=CENTRE,
                                           responded_at=backdated)))
    for key in (alert_id, lead_id):
        state = running.store.state(str(key))
        assert state is not None and state.status == "acknowledged"
        # On main: acked_at 2020, before the alert existed (the report counted it on time).
        assert state.acked_at == RECEIVED
        entry = state.history[-1]
        assert (entry.at, entry.claimed_at) == (RECEIVED, backdated)
    (metric,) = running.handlers.metrics.ack_seconds.collect()
    sums = [s.value for s in metric.samples if s.name.endswith("_sum")]
    assert sums == [60.0]  # one minute after the alert was raised


def test_a_record_time_in_the_future_is_the_services_own_clock(running: Service) -> None:
    alert_id, _ = _tracked_alert(running)
    now = dt.datetime.now(dt.UTC)
    _answer(running, dump(ReferralResponse(referral_id=alert_id, answer="acknowledged", agency=CENTRE)),
            at=now + dt.timedelta(days=3))
    state = running.store.state(str(alert_id))
    assert state is not None and state.acked_at is not None and state.acked_at <= dt.datetime.now(dt.UTC)


def test_an_answer_without_an_agency_is_refused(running: Service) -> None:
    alert_id, _ = _tracked_alert(running)
    _answer(running, dump(ReferralResponse(referral_id=alert_id, answer="acknowledged")))
    assert _status(running, alert_id) == "sent"  # on main: acknowledged by nobody
    assert [r["reason"] for r in _refusals(running)] == ["no_agency"]


@pytest.mark.parametrize(("raw", "reason"), [
    (b'"ACK"', "invalid_answer"),
    (b"ACK", "invalid_json"),
    (b"", "empty_message"),
    (b"[" * 5000, "too_deep"),
])
def test_what_is_not_an_answer_is_refused_not_dropped(running: Service, raw: bytes, reason: str) -> None:
    alert_id, _ = _tracked_alert(running)
    assert _answer(running, raw) == reason
    assert _status(running, alert_id) == "sent"
    # On main it vanished: a log line without an id, no dead letter, no metric.
    assert [r["reason"] for r in _refusals(running)] == [reason]
    assert running.handlers.metrics.answers_refused.labels(reason)._value.get() == 1


def test_an_answer_of_a_schema_major_the_bus_does_not_read_is_refused_with_that_reason(running: Service) -> None:
    """The trust boundary names an unknown major version (schemas/wire.py): the refusal says so,
    rather than failing on its own reason as a bug (`internal_error`)."""
    alert_id, _ = _tracked_alert(running)
    value = json.loads(dump(ReferralResponse(referral_id=alert_id, answer="acknowledged", agency=CENTRE)))
    assert _answer(running, json.dumps({**value, "schema_version": "2.0"}).encode()) == "unsupported_schema_version"
    assert _status(running, alert_id) == "sent"
    (refusal,) = _refusals(running)
    assert (refusal["reason"], refusal["referral_id"], refusal["schema_version"]) == (
        "unsupported_schema_version", str(alert_id), "1.0")
    fields = refusal["fields"]
    assert isinstance(fields, list) and fields[0]["field"] == "schema_version"
    assert running.handlers.metrics.internal_errors.labels("answer")._value.get() == 0


def test_a_rejection_without_a_reason_is_refused_naming_the_ids(running: Service) -> None:
    alert_id, _ = _tracked_alert(running)
    response_id = uuid.uuid4()
    raw = json.dumps({"response_id": str(response_id), "referral_id": str(alert_id), "answer": "rejected",
                      "agency": CENTRE, "reason": "   "}).encode()
    assert _answer(running, raw) == "invalid_answer"
    (refusal,) = _refusals(running)
    assert (refusal["response_id"], refusal["referral_id"], refusal["agency"], refusal["answer"]) == (
        str(response_id), str(alert_id), CENTRE, "rejected")
    assert refusal["fields"] == [{"field": "(message)", "reason": "a rejection needs a reason"}]


def test_an_escalated_agency_may_answer_and_answers_both_of_the_pair(running: Service) -> None:
    alert_id, lead_id = _tracked_alert(running)
    state = running.store.state(str(alert_id))
    assert state is not None and state.ack_deadline is not None
    for step in (1, 2):  # re-sent, then escalated to the joint office
        asyncio.run(running.handlers.scan_deadlines(state.ack_deadline + step * dt.timedelta(hours=1)))
        asyncio.run(running.handlers.on_escalation(running.sender.sent[-1][2]))
    assert "anti_trafficking_office" in running.store.state(str(alert_id)).addressed_to()  # type: ignore[union-attr]
    # The office answers the lead referral's id: entitled through the alert beside it.
    assert _answer(running, dump(ReferralResponse(referral_id=lead_id, answer="acknowledged",
                                                  agency="anti_trafficking_office"))) == "applied"
    assert _status(running, alert_id) == _status(running, lead_id) == "acknowledged"
    assert _refusals(running) == []


def test_an_answer_after_a_final_state_is_refused_and_not_recorded(running: Service) -> None:
    alert_id, _ = _tracked_alert(running)
    _answer(running, dump(ReferralResponse(referral_id=alert_id, answer="done", note="found", agency=CENTRE)))
    before = running.store.state(str(alert_id))
    late = ReferralResponse(referral_id=alert_id, answer="accepted", agency=CENTRE)
    assert _answer(running, dump(late)) == "already_final"
    # On main: recorded in the history as "accepted (ignored: done)", and nothing else said.
    assert running.store.state(str(alert_id)) == before
    assert [r["reason"] for r in _refusals(running)] == ["already_final"]


def test_an_answer_that_changes_nothing_is_refused(running: Service) -> None:
    alert_id, _ = _tracked_alert(running)
    _answer(running, dump(ReferralResponse(referral_id=alert_id, answer="accepted", agency=CENTRE)))
    assert _answer(running, dump(ReferralResponse(referral_id=alert_id, answer="acknowledged",
                                                  agency=CENTRE))) == "no_effect"
    assert _status(running, alert_id) == "accepted"


def test_a_copy_of_an_applied_answer_is_dropped_and_counted(running: Service) -> None:
    alert_id, _ = _tracked_alert(running)
    raw = dump(ReferralResponse(referral_id=alert_id, answer="acknowledged", agency=CENTRE))
    assert [_answer(running, raw), _answer(running, raw)] == ["applied", "duplicate"]
    assert _refusals(running) == []


def test_an_answer_before_its_referral_waits_and_is_authorised_when_it_comes(running: Service) -> None:
    report = missing_child()
    early = referral(report, "civil_affairs", role="cooperating", urgency="prompt", rule_id="x.care")
    wrong = ReferralResponse(referral_id=early.referral_id, answer="accepted", agency="youth_league")
    right = ReferralResponse(referral_id=early.referral_id, answer="accepted", agency="civil_affairs",
                             responded_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert [_answer(running, dump(wrong)), _answer(running, dump(right))] == ["parked", "parked"]
    asyncio.run(running.handlers.on_referral(dump(early)))
    state = running.store.state(str(early.referral_id))
    assert state is not None and state.status == "accepted" and state.acked_at == RECEIVED
    assert [h.by for h in state.history if h.what == "accepted"] == ["civil_affairs"]
    assert [(r["reason"], r["agency"]) for r in _refusals(running)] == [("not_entitled", "youth_league")]
    assert running.store.parked(str(early.referral_id)) == []


def test_an_answer_to_an_id_nobody_sends_is_refused_when_its_window_ends(running: Service) -> None:
    unknown = uuid.uuid4()
    assert _answer(running, dump(ReferralResponse(referral_id=unknown, answer="acknowledged", agency=CENTRE))) \
        == "parked"
    window = running.handlers.config.park_seconds
    parked_at = running.handlers.clock()
    assert asyncio.run(running.handlers.expire_parked(parked_at + dt.timedelta(seconds=window / 2))) == 0
    assert asyncio.run(running.handlers.expire_parked(parked_at + dt.timedelta(seconds=window + 1))) == 1
    (refusal,) = _refusals(running)
    assert (refusal["reason"], refusal["referral_id"]) == ("unknown_id", str(unknown))
    assert running.store.parked(str(unknown)) == []


def test_parking_is_bounded(running: Service) -> None:
    unknown = uuid.uuid4()
    outcomes = [_answer(running, dump(ReferralResponse(referral_id=unknown, answer="acknowledged", agency=CENTRE)))
                for _ in range(10)]
    assert outcomes.count("parked") == 8 and outcomes[8:] == ["unknown_id", "unknown_id"]


def test_a_bug_in_answering_is_one_refused_answer_and_the_worker_goes_on(
        running: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    alert_id, _ = _tracked_alert(running)

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("Zq9mark in a bug's message")

    monkeypatch.setattr("services.alerts.lifecycle.authorise", broken)
    assert _answer(running, dump(ReferralResponse(referral_id=alert_id, answer="acknowledged",
                                                  agency=CENTRE))) == "internal_error"
    (refusal,) = _refusals(running)
    assert refusal["reason"] == "internal_error" and refusal["referral_id"] == str(alert_id)
    assert running.handlers.metrics.internal_errors.labels("answer")._value.get() == 1
    assert "Zq9mark" not in json.dumps(refusal)


def test_a_bug_in_any_handler_is_counted_and_the_worker_goes_on(
        running: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    report = missing_child()
    lead = referral(report, CENTRE)

    def broken(*_: object, **__: object) -> None:
        raise KeyError("Zq9mark")

    monkeypatch.setattr("services.alerts.lifecycle.track_referral", broken)
    asyncio.run(running.handlers.guard("referral", running.handlers.on_referral, dump(lead)))
    assert running.handlers.metrics.internal_errors.labels("referral")._value.get() == 1
    assert running.store.state(str(lead.referral_id)) is None
