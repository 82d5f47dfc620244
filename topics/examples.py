"""One or more example of every message on the bus, for the published contract.

Built from the demo's scripted situations at a fixed time, routed by the real rule engine, so
the examples are what the bus really sends, and the same on every run (the documents generated
from them are drift-tested). Each example is built through its model: an example the model
refuses cannot be published; the tests check each one against its published schema too.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from functools import cache
from typing import Any

from pydantic import BaseModel

from bus.demo_events import CST, INVALID_EVENT, scripted_events
from rules.deadlines import Deadlines
from rules.engine import load_rulebook, route
from schemas.alerts import (
    CaseChange,
    ChildDescriptors,
    Escalation,
    HistoryEntry,
    ParkedAnswer,
    ParkedAnswers,
    PoliceAlert,
    ReferralResponse,
    TrackedState,
    alert_id_for,
    escalation_id_for,
)
from schemas.answers import AnswerRequest, RefusedAnswer
from schemas.broadcast import BroadcastRefusal, CaseBroadcast, PublicChild, Release
from schemas.events import parse_event_obj
from schemas.notices import RefusalNotice
from schemas.receipts import EventClaim, Receipt, RefusalField, RoutedTo, audit_record
from schemas.referrals import DeadLetter

#: The examples' clock and the demo run they come from: fixed, so the documents do not drift.
AT = dt.datetime(2026, 11, 20, 8, 0, tzinfo=CST)
RUN = uuid.UUID("00000000-0000-4000-8000-000000000018")


def _json(model: BaseModel) -> Any:
    return model.model_dump(mode="json")


@cache
def examples() -> dict[str, list[tuple[str, Any]]]:
    """`{model name: [(summary, JSON value), ...]}` for every published message."""
    demo = scripted_events(AT, RUN)
    missing, hub = demo[0], demo[1]
    case_id = uuid.UUID(missing["event_id"])
    resolution = {
        "event_id": str(uuid.uuid5(RUN, "resolution")), "kind": "case_resolved", "jurisdiction": "xian",
        "occurred_at": "2026-11-20T10:10:00+08:00", "reported_at": "2026-11-20T10:15:00+08:00",
        "reporter": {"agency": "police.command_center", "role": "police_officer"},
        "case_id": str(case_id), "outcome": "found_alive",
        "description": "Child found at a relative's home; returned to his parents.",
    }
    release_id = uuid.uuid5(RUN, "release")
    release: dict[str, Any] = {
        "event_id": str(release_id), "kind": "missing_child_info_release", "jurisdiction": "xian",
        "occurred_at": "2026-11-20T08:10:00+08:00", "reported_at": "2026-11-20T08:10:00+08:00",
        "reporter": {"agency": "police.command_center", "role": "police_officer"},
        "case_id": str(case_id), "guardian_consent": True, "public_contact": "110",
    }
    events = [(f"{e['kind']} in {e['jurisdiction']}", parse_event_obj(e)) for e in (*demo, resolution, release)]
    report = events[0][1]
    referrals = route(report, load_rulebook(), deadlines=Deadlines.load())
    lead = next(r for r in referrals if r.role == "lead")
    alert = PoliceAlert(
        alert_id=alert_id_for(report.event_id), case_id=case_id, event_id=report.event_id,
        jurisdiction=lead.jurisdiction, agency=lead.agency, urgency=lead.urgency, action=lead.action,
        action_zh=lead.action_zh, raised_at=report.reported_at, ack_deadline=lead.ack_by,
        lead_referral_id=lead.referral_id, referral_ids=tuple(r.referral_id for r in referrals if r is not lead),
        rule_id=lead.rule_id, citation=lead.citation,
        descriptors=ChildDescriptors(age=6, sex="male", place="西安市雁塔区大雁塔北广场",
                                     last_seen_at=AT - dt.timedelta(minutes=40)))
    ack = ReferralResponse(response_id=uuid.uuid5(RUN, "ack"), referral_id=alert.alert_id, answer="acknowledged",
                           agency=alert.agency, responded_at=AT + dt.timedelta(minutes=2), officer="cc-wang")
    rejected = ReferralResponse(response_id=uuid.uuid5(RUN, "reject"), referral_id=referrals[-1].referral_id,
                                answer="rejected", agency=referrals[-1].agency,
                                reason="Not ours: the square is in another district's area.",
                                responded_at=AT + dt.timedelta(minutes=4))
    done = ReferralResponse(response_id=uuid.uuid5(RUN, "done"), referral_id=lead.referral_id, answer="done",
                            agency=lead.agency, note="Child found and returned to his parents.",
                            responded_at=AT + dt.timedelta(hours=2, minutes=20))
    resend = Escalation(
        escalation_id=escalation_id_for(alert.alert_id, 1), referral_id=alert.alert_id, case_id=case_id,
        action="resend", step=1, level=0, target_agency=alert.agency, target_jurisdiction=alert.jurisdiction,
        reason="not acknowledged by its deadline", decided_at=AT + dt.timedelta(minutes=5),
        ack_deadline=AT + dt.timedelta(minutes=10), alert=alert.model_copy(update={"attempt": 2}),
        event_id=report.event_id, raised_at=report.reported_at)
    state = TrackedState(
        id=alert.alert_id, kind="alert", event_id=report.event_id, event_kind=report.kind, case_id=case_id,
        jurisdiction=alert.jurisdiction, agency=alert.agency, role="lead", urgency=alert.urgency,
        raised_at=alert.raised_at, ack_deadline=alert.ack_deadline, status="acknowledged",
        target_agency=alert.agency, target_jurisdiction=alert.jurisdiction, acked_at=ack.responded_at,
        twin_id=lead.referral_id, alert=alert,
        history=(HistoryEntry(at=alert.raised_at, what="raised"),
                 HistoryEntry(at=ack.responded_at, what="acknowledged", ref=str(ack.response_id), by=ack.agency,
                              officer=ack.officer)))
    opened = CaseChange(case_id=case_id, change="opened", changed_at=AT, jurisdiction="xian", owner=alert.agency,
                        event_id=report.event_id, alert_id=alert.alert_id, opened_at=AT,
                        descriptors=alert.descriptors)
    receipt = Receipt(
        event_id=str(report.event_id), status="routed", reporter_agency=report.reporter.agency, kind=report.kind,
        jurisdiction=report.jurisdiction,
        routed_to=tuple(RoutedTo(agency=r.agency, role=r.role, referral_id=r.referral_id, rule_id=r.rule_id,
                                 clause=r.citation.clause, file=r.citation.file, urgency=r.urgency,
                                 ack_by=r.ack_by, due_by=r.due_by) for r in referrals[:2]),
        issued_at=AT + dt.timedelta(seconds=1))
    refused_receipt = Receipt(event_id=hub["event_id"], status="refused", reporter_agency="transport",
                              refusal_reason="invalid_event",
                              refusal_errors=({"field": "person.age", "reason": "Input should be a valid integer"},),
                              issued_at=AT)
    letter = DeadLetter(reason="invalid_event",
                        errors=[{"field": "event_id", "reason": "must be a UUID in lowercase hyphenated form"},
                                {"field": "jurisdiction", "reason": "unknown jurisdiction"}],
                        topic="events.inbound", partition=0, offset=41,
                        original_b64=base64.b64encode(INVALID_EVENT).decode(), received_at=AT)
    public = PublicChild(name="王小明", age=6, sex="male", distinguishing_features="red jacket",
                         last_seen_at=AT - dt.timedelta(minutes=40), last_seen_place="西安市雁塔区大雁塔北广场",
                         lat=34.22, lon=108.96)
    broadcast_state = CaseBroadcast(
        case_id=case_id, child=public,
        release=Release(event_id=release_id, agency="police.command_center",
                        public_contact="110"),
        releases=(release_id,))
    refusal = BroadcastRefusal(event_id=uuid.uuid5(RUN, "early-release"), case_id=case_id,
                               kind="missing_child_info_release", reason="no_guardian_consent",
                               detail="the guardian has not agreed to a public release",
                               reporter_agency="police.command_center", refused_at=AT)
    not_entitled = RefusedAnswer(
        response_id=str(uuid.uuid5(RUN, "not-entitled")), referral_id=str(lead.referral_id), agency="youth_league",
        answer="accepted", reason="not_entitled", received_at=AT + dt.timedelta(minutes=3),
        refused_at=AT + dt.timedelta(minutes=3, milliseconds=12), topic="answers.referrals", partition=1, offset=207)
    not_an_answer = RefusedAnswer(
        response_id="sha256:5d41402abc4b", referral_id=str(alert.alert_id), agency=alert.agency,
        reason="invalid_answer", fields=(RefusalField(field="answer", reason="not one of the allowed values"),),
        received_at=AT + dt.timedelta(minutes=1), refused_at=AT + dt.timedelta(minutes=1, milliseconds=9),
        topic="answers.referrals", partition=3, offset=88)
    event_notice = RefusalNotice(
        message="event", reason="kind_not_permitted", event_id=str(uuid.uuid5(RUN, "school-reports-a-case-closed")),
        fields=(RefusalField(field="kind", reason="not permitted for this agency"),),
        topic="agency.education.events", partition=0, offset=312, received_at=AT + dt.timedelta(minutes=4),
        refused_at=AT + dt.timedelta(minutes=4))
    answer_notice = RefusalNotice(
        message="answer", reason="agency_mismatch", response_id=str(uuid.uuid5(RUN, "answer-for-another")),
        referral_id=str(lead.referral_id),
        fields=(RefusalField(field="agency", reason="not the authenticated agency"),),
        topic="agency.education.answers", partition=0, offset=57, received_at=AT + dt.timedelta(minutes=5),
        refused_at=AT + dt.timedelta(minutes=5))
    early = ParkedAnswer(response=ack, received_at=AT + dt.timedelta(minutes=2),
                         parked_at=AT + dt.timedelta(minutes=2))
    return {
        "Event": [(summary, _json(e)) for summary, e in events],
        "Referral": [(f"{r.role} referral to {r.agency}", _json(r)) for r in referrals[:2]],
        "PoliceAlert": [("the alert of a missing-child report", _json(alert))],
        "ReferralResponse": [("acknowledged by a command-centre officer", _json(ack)),
                             ("rejected, with the reason", _json(rejected)), ("done, with a note", _json(done))],
        "Escalation": [("a re-send of an unacknowledged alert", _json(resend))],
        "TrackedState": [("an acknowledged alert", _json(state))],
        "CaseChange": [("a case opened by a missing-child report", _json(opened))],
        "Receipt": [("routed", _json(receipt)), ("refused", _json(refused_receipt))],
        "AuditRecord": [("routed by the router", _json(audit_record(
            report.event_id, "routed", "router", AT, referral_id=lead.referral_id, agency=lead.agency,
            detail="lead")))],
        "DeadLetter": [("an event with a malformed id and an unknown jurisdiction", _json(letter))],
        "CaseBroadcast": [("released with the guardian's consent, before the first alert", _json(broadcast_state))],
        "BroadcastRefusal": [("a release without the guardian's consent", _json(refusal))],
        "EventClaim": [("an intake replica claims an event id for the agency that sent it", _json(EventClaim(
            event_id=report.event_id, agency="police.command_center", status="claimed", replica="intake-1",
            at=AT))), ("and records that the broker has the event", _json(EventClaim(
                event_id=report.event_id, agency="police.command_center", status="accepted", replica="intake-1",
                at=AT + dt.timedelta(milliseconds=40), body_sha256="9f2c" * 16, partition=2, offset=1041)))],
        "ParkedAnswers": [("an acknowledgement that arrived before its alert",
                           ParkedAnswers((early,)).model_dump(mode="json"))],
        "RefusedAnswer": [("an answer from an agency the referral was not addressed or escalated to",
                           _json(not_entitled)),
                          ("not an answer: an unknown answer, and a response_id that is not a UUID",
                           _json(not_an_answer))],
        "RefusalNotice": [("an event of a kind the agency may not publish", _json(event_notice)),
                          ("an answer naming another agency than the topic's", _json(answer_notice))],
        "AnswerRequest": [("a rejection, posted with the agency's token", _json(AnswerRequest(
            response_id=uuid.uuid5(RUN, "reject-over-http"), answer="rejected", officer="desk 2",
            reason="Not ours: the square is in another district's area.")))],
    }

