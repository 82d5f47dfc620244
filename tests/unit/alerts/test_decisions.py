"""What the alerts service publishes of its decisions, so that readers render them and never decide
them again: grouped (under which alert), re-sent, escalated, re-assigned, kept open after a
resolution; and a clue's referrals grouped with the ids the router gave them (no second routing)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from rules.catalog import JOINT_OFFICE
from rules.deadlines import Deadlines
from schemas.alerts import CaseChange, ReferralResponse, dump
from schemas.events import Event
from services.router.alert import police_alert

from .conftest import T0, clue, missing_child, referral, resolution
from .fakes import Service, service

DAY = dt.timedelta(days=1)


@pytest.fixture
def running() -> Service:
    return service()


def _run(running: Service, *events: Event) -> None:
    for event in events:
        asyncio.run(running.handlers.on_event(dump(event)))


def _alert(running: Service, report: Event) -> uuid.UUID:
    alert = police_alert(report, [], Deadlines.load())
    assert alert is not None
    asyncio.run(running.handlers.on_alert(dump(alert)))
    return alert.alert_id


def _case(running: Service, case_id: uuid.UUID) -> CaseChange:
    case = running.store.case(case_id)
    assert case is not None
    return case


def test_a_further_reports_alert_is_published_grouped_under_the_cases_own_alert(running: Service) -> None:
    report = missing_child()
    _run(running, report)
    first = _alert(running, report)
    again = _alert(running, missing_child(case_id=report.event_id, at=T0 + dt.timedelta(hours=1)))
    state = running.store.state(str(again))
    assert state is not None and state.status == "grouped" and state.grouped_under == first
    own = running.store.state(str(first))
    assert own is not None and own.status == "sent" and own.grouped_under is None


def test_each_step_of_the_ladder_is_published_with_the_escalation_it_applied(running: Service) -> None:
    report = missing_child()
    _run(running, report)
    alert_id = _alert(running, report)
    state = running.store.state(str(alert_id))
    assert state is not None and state.escalation is None and state.ack_deadline is not None
    for step in (1, 2):
        now = T0 + step * dt.timedelta(hours=1)
        assert asyncio.run(running.handlers.scan_deadlines(now)) == 1
        _, _, value = running.sender.sent[-1]
        asyncio.run(running.handlers.on_escalation(value))
        state = running.store.state(str(alert_id))
        assert state is not None and state.escalation is not None and state.escalation.step == step
    assert state.escalation is not None  # the loop's last step says so; again for mypy
    assert state.escalation.action == "escalate" and state.escalation.target_agency == JOINT_OFFICE


def test_a_rejected_lead_is_published_with_its_re_assignment(running: Service) -> None:
    report = missing_child()
    lead = referral(report, "police.command_center")
    asyncio.run(running.handlers.on_referral(dump(lead)))
    asyncio.run(running.handlers.on_response(dump(ReferralResponse(
        referral_id=lead.referral_id, answer="rejected", reason="outside our district", responded_at=T0,
        agency="police.command_center"))))
    state = running.store.state(str(lead.referral_id))
    assert state is not None and state.escalation is not None
    assert state.escalation.action == "reassign" and state.escalation.target_agency == JOINT_OFFICE
    assert running.sender.topics == [f"referrals.{JOINT_OFFICE}", "alerts.escalations"]


def test_duties_raised_after_the_resolution_are_published_as_kept_open(running: Service) -> None:
    report = missing_child()
    _run(running, report)
    _alert(running, report)
    early = referral(clue("rescued_victim_needs_medical_care", case_id=report.event_id, at=T0 + 2 * DAY),
                     "health", urgency="prompt", rule_id="x.med")
    asyncio.run(running.handlers.on_referral(dump(early)))  # read before the resolution
    _run(running, resolution(report.event_id, at=T0 + DAY))
    late = referral(clue("rescued_victim_needs_medical_care", case_id=report.event_id, at=T0 + 3 * DAY),
                    "civil_affairs", urgency="prompt", rule_id="x.care")
    asyncio.run(running.handlers.on_referral(dump(late)))  # read after it
    again = _alert(running, missing_child(case_id=report.event_id, at=T0 + 4 * DAY))
    for key in (early.referral_id, late.referral_id, again):
        state = running.store.state(str(key))
        assert state is not None and state.status == "sent" and state.after_resolution == T0 + DAY, key
    own = running.store.state(str(report.event_id))
    assert own is None or own.after_resolution is None


def test_a_clues_referrals_are_grouped_by_the_ids_the_router_gave_them(running: Service) -> None:
    report = missing_child()
    _run(running, report)
    found = clue()
    early = referral(found, "police", rule_id="x.police")
    asyncio.run(running.handlers.on_referral(dump(early)))  # the router was faster than the link
    _run(running, found)
    case = _case(running, report.event_id)
    assert case.change == "clue_linked" and case.clues[0].referral_agencies == ("police",)
    state = running.store.state(str(early.referral_id))
    assert state is not None and state.grouped and state.case_id == report.event_id
    late = referral(found, "railway", rule_id="x.rail")
    asyncio.run(running.handlers.on_referral(dump(late)))  # routed after the link
    case = _case(running, report.event_id)
    assert case.change == "clue_referred" and case.clues[0].referral_agencies == ("police", "railway")
    state = running.store.state(str(late.referral_id))
    assert state is not None and state.grouped and state.case_id == report.event_id
    # A copy of the late referral changes nothing more.
    asyncio.run(running.handlers.on_referral(dump(late)))
    assert _case(running, report.event_id) == case
