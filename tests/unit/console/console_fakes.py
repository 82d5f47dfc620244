"""Tracked states, cases and fakes for the console's unit tests (no broker)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from schemas.alerts import (
    CaseChange,
    ChildDescriptors,
    HistoryEntry,
    PoliceAlert,
    ReferralResponse,
    TrackedState,
    alert_id_for,
)
from schemas.referrals import Citation, Referral, referral_id_for

T0 = dt.datetime(2026, 11, 20, 0, 0, tzinfo=dt.UTC)  # 08:00 in 西安
CITE = Citation(file="001_56bdd0a940e471fd.txt", clause="第八条", quote="q")


@dataclass(frozen=True)
class Desk:
    agency: str
    jurisdictions: frozenset[str] | None = None

    def sees(self, *jurisdictions: str) -> bool:
        return self.jurisdictions is None or any(j in self.jurisdictions for j in jurisdictions)


def alert_pair(event_id: uuid.UUID | None = None, *, exercise: bool = False) -> tuple[TrackedState, TrackedState]:
    """A missing child's alert and the command centre's lead referral beside it (twins)."""
    event_id = event_id or uuid.uuid4()
    alert_id = alert_id_for(event_id)
    lead_id = referral_id_for(event_id, "police.command_center", "r", "lead")
    subject = {"person": {"age": 6, "sex": "female", "name": "张小花"}, "description": "红色羽绒服",
               "last_seen_at": (T0 - dt.timedelta(minutes=30)).isoformat(),
               "last_seen_location": {"place": "西安北站", "lat": 34.37, "lon": 108.94, "address": "某小区"}}
    referral = Referral(referral_id=lead_id, event_id=event_id, kind="child_missing_reported", jurisdiction="xian",
                        decided_by="xian", agency="police.command_center", role="lead", action="search",
                        urgency="immediate", reported_at=T0, ack_by=T0 + dt.timedelta(minutes=5),
                        due_by=T0 + dt.timedelta(hours=1), rule_id="r", citation=CITE, case_id=event_id,
                        subject=subject, exercise=exercise)
    alert = PoliceAlert(alert_id=alert_id, case_id=event_id, event_id=event_id, jurisdiction="xian",
                        agency="police.command_center", urgency="immediate", action="search", raised_at=T0,
                        ack_deadline=T0 + dt.timedelta(minutes=5), lead_referral_id=lead_id, exercise=exercise,
                        descriptors=ChildDescriptors(age=6, sex="female", place="西安北站"))
    a = TrackedState(id=alert_id, kind="alert", event_id=event_id, event_kind="child_missing_reported",
                     case_id=event_id, jurisdiction="xian", agency="police.command_center", role="lead",
                     urgency="immediate", raised_at=T0, ack_deadline=alert.ack_deadline,
                     next_deadline=alert.ack_deadline, target_agency="police.command_center",
                     target_jurisdiction="xian", twin_id=lead_id, alert=alert, exercise=exercise,
                     history=(HistoryEntry(at=T0, what="raised"),))
    r = TrackedState(id=lead_id, kind="referral", event_id=event_id, event_kind="child_missing_reported",
                     case_id=event_id, jurisdiction="xian", agency="police.command_center", role="lead",
                     urgency="immediate", raised_at=T0, ack_deadline=referral.ack_by,
                     target_agency="police.command_center", target_jurisdiction="xian", twin_id=alert_id,
                     referral=referral, exercise=exercise, history=(HistoryEntry(at=T0, what="referred"),))
    return a, r


def escalated(state: TrackedState, to: str = "anti_trafficking_office", level: int = 1) -> TrackedState:
    entry = HistoryEntry(at=T0 + dt.timedelta(minutes=5), what="escalate", ref=str(uuid.uuid4()), by=to,
                         detail=f"level {level} xian")
    return state.model_copy(update={"step": state.step + 1, "level": level, "target_agency": to,
                                    "history": (*state.history, entry)})


def answered(state: TrackedState, response: ReferralResponse, status: str) -> TrackedState:
    entry = HistoryEntry(at=response.responded_at, what=response.answer, ref=str(response.response_id),
                         by=response.agency, officer=response.officer)
    return state.model_copy(update={"status": status, "history": (*state.history, entry)})


def case_of(alert: TrackedState) -> CaseChange:
    assert alert.case_id is not None and alert.alert is not None
    return CaseChange(case_id=alert.case_id, change="opened", changed_at=T0, jurisdiction="xian",
                      owner="police.command_center", event_id=alert.event_id, alert_id=alert.id, opened_at=T0)
