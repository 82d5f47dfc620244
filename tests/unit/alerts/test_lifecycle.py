"""The alert/referral state machine: answers, re-sends, escalation ladder, closing."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from rules.catalog import JOINT_OFFICE
from rules.deadlines import Deadlines
from schemas.alerts import ReferralResponse, TrackedState
from services.alerts import lifecycle
from services.router.alert import police_alert

from .conftest import T0, missing_child, referral


def _alert_state(deadlines: Deadlines, jurisdiction: str = "xian") -> TrackedState:
    event = missing_child(jurisdiction=jurisdiction)
    alert = police_alert(event, [referral(event, "police.command_center")], deadlines)
    assert alert is not None
    return lifecycle.track_alert(alert)


#: When the bus received the answers of these tests (their senders claim the same time).
ANSWERED = T0 + dt.timedelta(minutes=2)


def _answer(state: TrackedState, answer: str, **kw: str) -> ReferralResponse:
    return ReferralResponse(referral_id=state.id, answer=answer, agency=state.agency,
                            responded_at=T0 + dt.timedelta(minutes=2), **kw)


@pytest.mark.parametrize(("answers", "status"), [
    (["acknowledged"], "acknowledged"),
    (["acknowledged", "accepted"], "accepted"),
    (["accepted", "acknowledged"], "accepted"),          # a late ack changes nothing
    (["acknowledged", "accepted", "done"], "done"),
    (["done", "acknowledged"], "done"),                  # after done, answers are refused
    (["rejected"], "rejected"),
    (["accepted", "rejected"], "accepted"),              # accepted duties are not rejected later
])
def test_answers(deadlines: Deadlines, answers: list[str], status: str) -> None:
    state = _alert_state(deadlines)
    for answer in answers:
        extra = {"reason": "not ours"} if answer == "rejected" else {"note": "found"} if answer == "done" else {}
        state = lifecycle.apply_response(state, _answer(state, answer, **extra), ANSWERED).state
    assert state.status == status
    assert state.next_deadline is None  # any first answer stops the ladder


def test_first_answer_reports_ack_latency(deadlines: Deadlines) -> None:
    state = _alert_state(deadlines)
    outcome = lifecycle.apply_response(state, _answer(state, "acknowledged"), ANSWERED)
    assert outcome.effects == (lifecycle.Acked(120.0),)
    again = lifecycle.apply_response(outcome.state, _answer(outcome.state, "accepted"), ANSWERED)
    assert again.effects == ()


def test_a_copy_of_an_answer_is_a_no_op(deadlines: Deadlines) -> None:
    state = _alert_state(deadlines)
    response = _answer(state, "acknowledged")
    first = lifecycle.apply_response(state, response, ANSWERED)
    second = lifecycle.apply_response(first.state, response, ANSWERED)
    assert first.applied and not second.applied and second.state == first.state


def test_rejected_lead_referral_goes_back_to_the_joint_office() -> None:
    event = missing_child()
    state = lifecycle.track_referral(referral(event, "police.command_center"))
    outcome = lifecycle.apply_response(state, _answer(state, "rejected", reason="wrong district"), ANSWERED)
    (reassign,) = [e for e in outcome.effects if isinstance(e, lifecycle.Reassign)]
    assert reassign.escalation.action == "reassign" and reassign.escalation.target_agency == JOINT_OFFICE
    assert reassign.referral is not None and reassign.referral.agency == JOINT_OFFICE
    assert reassign.referral.role == "lead" and "wrong district" in reassign.referral.action
    assert outcome.state.reassigned_to == reassign.referral.referral_id
    # Deterministic: the same rejection replayed re-assigns to the same id.
    again = lifecycle.apply_response(state, _answer(state, "rejected", reason="wrong district"), ANSWERED)
    (reassign2,) = [e for e in again.effects if isinstance(e, lifecycle.Reassign)]
    assert reassign2.referral is not None and reassign2.referral.referral_id == reassign.referral.referral_id


def test_rejected_cooperating_referral_is_not_reassigned() -> None:
    event = missing_child()
    state = lifecycle.track_referral(referral(event, "railway", role="cooperating", rule_id="x.rail"))
    outcome = lifecycle.apply_response(state, _answer(state, "rejected", reason="no station"), ANSWERED)
    assert outcome.state.status == "rejected" and outcome.effects == ()


def test_alert_with_a_lead_referral_leaves_reassignment_to_the_referral(deadlines: Deadlines) -> None:
    state = _alert_state(deadlines)
    assert state.twin_id is not None
    outcome = lifecycle.apply_response(state, _answer(state, "rejected", reason="x"), ANSWERED)
    assert not any(isinstance(e, lifecycle.Reassign) for e in outcome.effects)


def test_lead_referral_and_alert_are_twins(deadlines: Deadlines) -> None:
    event = missing_child()
    lead = referral(event, "police.command_center")
    alert = police_alert(event, [lead], deadlines)
    assert alert is not None
    assert lifecycle.track_referral(lead).twin_id == alert.alert_id
    assert lifecycle.track_alert(alert).twin_id == lead.referral_id


def test_ladder_resend_then_office_then_parent_command_centres(deadlines: Deadlines) -> None:
    state = _alert_state(deadlines, "xian")
    assert state.ack_deadline is not None
    now = state.ack_deadline
    assert lifecycle.next_escalation(state, now - dt.timedelta(seconds=1), deadlines, resends=1) is None
    steps = []
    while (esc := lifecycle.next_escalation(state, now, deadlines, resends=1)) is not None:
        steps.append((esc.action, esc.level, esc.target_agency, esc.target_jurisdiction))
        assert esc.ack_deadline == now + dt.timedelta(minutes=5)
        outcome = lifecycle.apply_escalation(state, esc)
        assert outcome.applied
        assert not lifecycle.apply_escalation(outcome.state, esc).applied  # a copy changes nothing
        state = outcome.state
        now = esc.ack_deadline
    assert steps == [
        ("resend", 0, "police.command_center", "xian"),
        ("escalate", 1, JOINT_OFFICE, "xian"),
        ("escalate", 2, "police.command_center", "shaanxi"),
        ("escalate", 3, "police.command_center", "national_2021"),
    ]
    assert state.resends == 1 and state.level == 3


def test_resend_keeps_the_alert_id_with_a_new_attempt(deadlines: Deadlines) -> None:
    state = _alert_state(deadlines)
    assert state.ack_deadline is not None
    esc = lifecycle.next_escalation(state, state.ack_deadline, deadlines, resends=1)
    assert esc is not None and esc.alert is not None
    assert esc.alert.alert_id == state.id and esc.alert.attempt == 2
    later = lifecycle.next_escalation(state, state.ack_deadline + dt.timedelta(seconds=9), deadlines, resends=1)
    assert later is not None and esc.escalation_id == later.escalation_id


def test_no_escalation_once_acknowledged(deadlines: Deadlines) -> None:
    state = _alert_state(deadlines)
    assert state.ack_deadline is not None
    acked = lifecycle.apply_response(state, _answer(state, "acknowledged"), ANSWERED).state
    assert lifecycle.next_escalation(acked, state.ack_deadline + dt.timedelta(hours=1), deadlines, 1) is None
    assert not lifecycle.is_overdue(acked, state.ack_deadline + dt.timedelta(hours=1))


def test_an_escalation_racing_an_answer_is_not_applied(deadlines: Deadlines) -> None:
    state = _alert_state(deadlines)
    assert state.ack_deadline is not None
    esc = lifecycle.next_escalation(state, state.ack_deadline, deadlines, 1)
    assert esc is not None
    acked = lifecycle.apply_response(state, _answer(state, "acknowledged"), ANSWERED).state
    assert not lifecycle.apply_escalation(acked, esc).applied


def test_grouped_alert_is_never_paged_again(deadlines: Deadlines) -> None:
    event = missing_child()
    alert = police_alert(event, [], deadlines)
    assert alert is not None and alert.ack_deadline is not None
    state = lifecycle.track_alert(alert, grouped=True)
    assert state.status == "grouped"
    assert lifecycle.next_escalation(state, alert.ack_deadline + dt.timedelta(hours=1), deadlines, 1) is None


def test_closing_stops_the_ladder(deadlines: Deadlines) -> None:
    state = _alert_state(deadlines)
    assert state.ack_deadline is not None
    closed = lifecycle.close(state, T0, uuid.uuid4())
    assert closed.applied and closed.state.status == "closed"
    assert lifecycle.next_escalation(closed.state, state.ack_deadline + dt.timedelta(hours=1), deadlines, 1) is None
    assert lifecycle.apply_response(closed.state, _answer(state, "acknowledged"), ANSWERED).refused


def test_ladder_ends_at_the_top_of_the_chain(deadlines: Deadlines) -> None:
    assert [t.jurisdiction for t in lifecycle.ladder("yunyang")] == ["yunyang", "chongqing", "national_2013"]
    assert [t.agency for t in lifecycle.ladder("national_2021")] == [JOINT_OFFICE]
