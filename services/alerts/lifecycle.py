"""The alert and referral state machine, free of faust: track, answer, re-send, escalate, close.

Every function takes a state and returns the next one with what it implies (`Outcome.effects`);
the agents only store states and send effects. Re-applying the same response or escalation (a
copy after a crash) returns the state unchanged, so replays are harmless.

States: sent → acknowledged → accepted → done; sent/acknowledged → rejected (a lead's
rejection is re-assigned to the joint-conference office); grouped (a further report about a
case whose alert is active: not paged again); closed (the case was resolved: nothing more
about it is paged).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field

from rules.catalog import COMMAND_CENTER, JOINT_OFFICE, MISSING_CHILD, catalog
from rules.deadlines import Deadlines
from schemas.alerts import (
    FINAL_STATUSES,
    CaseChange,
    Escalation,
    HistoryEntry,
    PoliceAlert,
    ReferralResponse,
    TrackedState,
    alert_id_for,
    escalation_id_for,
    next_status,
)
from schemas.cases import case_of as case_named
from schemas.cases import referral_case
from schemas.referrals import Referral, referral_id_for

#: States in which an alert still waits for its first answer (and so may be re-sent/escalated).
WAITING = frozenset({"sent"})
#: States an answer can no longer change.
FINAL = FINAL_STATUSES
#: Fallback interval between ladder steps for an urgency level with no ack deadline.
DEFAULT_STEP = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Reassign:
    """A lead's rejection: hand the duty back to the joint-conference office (反拐联席会议办公室)."""

    escalation: Escalation
    referral: Referral | None


@dataclass(frozen=True)
class Acked:
    """An alert's first answer: `seconds` since it was raised (for the ack-latency histogram)."""

    seconds: float


Effect = Reassign | Acked


@dataclass(frozen=True)
class Outcome:
    """The next state; `applied` is False for a copy or an answer that changes nothing."""

    state: TrackedState
    applied: bool
    effects: tuple[Effect, ...] = field(default=())
    refused: str | None = None


@dataclass(frozen=True)
class Target:
    level: int
    agency: str
    jurisdiction: str


# -- tracking ---------------------------------------------------------------------------------

def track_alert(alert: PoliceAlert, *, grouped: bool = False, under: uuid.UUID | None = None) -> TrackedState:
    """The state of a newly raised alert; `grouped` (`under` the case's own alert) when its case
    already has an active alert."""
    grouped = grouped or under is not None
    return TrackedState(
        id=alert.alert_id, kind="alert", event_id=alert.event_id, event_kind=MISSING_CHILD,
        case_id=alert.case_id, jurisdiction=alert.jurisdiction, agency=alert.agency, role="lead",
        urgency=alert.urgency, raised_at=alert.raised_at, ack_deadline=alert.ack_deadline,
        next_deadline=None if grouped else alert.ack_deadline,
        status="grouped" if grouped else "sent",
        target_agency=alert.agency, target_jurisdiction=alert.jurisdiction, exercise=alert.exercise,
        twin_id=alert.lead_referral_id, alert=alert, grouped_under=under,
        history=(HistoryEntry(at=alert.raised_at, what="grouped" if grouped else "raised"),),
    )


def twin_of(referral: Referral) -> uuid.UUID | None:
    """The alert that a missing-child report's command-centre lead referral stands beside."""
    if referral.kind == MISSING_CHILD and referral.role == "lead" and referral.agency == COMMAND_CENTER:
        alert_id: uuid.UUID = alert_id_for(referral.event_id)
        return alert_id
    return None


def case_of(state: TrackedState) -> uuid.UUID | None:
    """The case of a tracked alert or referral (`schemas.cases`; also for states stored before
    referrals were tracked with their case)."""
    return case_named(state.event_kind, state.event_id, state.case_id)


def track_referral(referral: Referral) -> TrackedState:
    """The state of a newly seen referral (referrals are tracked and answered, not escalated)."""
    return TrackedState(
        id=referral.referral_id, kind="referral", event_id=referral.event_id, event_kind=referral.kind,
        case_id=referral_case(referral), jurisdiction=referral.jurisdiction, agency=referral.agency,
        role=referral.role, urgency=referral.urgency, raised_at=referral.reported_at,
        ack_deadline=referral.ack_by, target_agency=referral.agency,
        target_jurisdiction=referral.jurisdiction, exercise=referral.exercise,
        twin_id=twin_of(referral), referral=referral,
        history=(HistoryEntry(at=referral.reported_at, what="referred"),),
    )


# -- answers ----------------------------------------------------------------------------------

def authorise(state: TrackedState, twin: TrackedState | None, response: ReferralResponse) -> str | None:
    """Why `response` may not be applied to `state` (a refusal reason), or None when it may.

    An alert and the command centre's lead referral beside it (`twin`) are one duty: an agency
    the one or the other was addressed or escalated to (`TrackedState.addressed_to()`) answers
    both. The answer must change something on one of them that is not final yet.
    """
    if response.agency is None:
        return "no_agency"
    entitled = state.addressed_to() | (twin.addressed_to() if twin is not None else frozenset())
    if response.agency not in entitled:
        return "not_entitled"
    targets = [s for s in (state, twin) if s is not None and s.status not in FINAL]
    if not targets:
        return "already_final"
    if all(_next_status(s.status, response.answer) is None for s in targets):
        return "no_effect"
    return None


def apply_response(state: TrackedState, response: ReferralResponse, at: dt.datetime) -> Outcome:
    """Apply one agency answer, dated `at`: when the bus received it, never the sender's own
    `responded_at` (recorded as `claimed_at`). Answers after a final state are refused (and recorded)."""
    ref = str(response.response_id)
    if state.has(ref):
        return Outcome(state, applied=False)
    entry = HistoryEntry(at=at, what=response.answer, ref=ref, by=response.agency,
                         detail=response.reason or response.note, officer=response.officer,
                         claimed_at=response.responded_at)
    if state.status in FINAL:
        refused = f"{state.id} is {state.status}"
        ignored = entry.model_copy(update={"what": f"{response.answer} (ignored: {state.status})"})
        return Outcome(state.model_copy(update={"history": (*state.history, ignored)}), applied=False,
                       refused=refused)
    status = _next_status(state.status, response.answer)
    if status is None:
        # e.g. 'acknowledged' after 'accepted': recorded, nothing changes.
        return Outcome(state.model_copy(update={"history": (*state.history, entry)}), applied=False)
    updates: dict[str, object] = {"status": status, "history": (*state.history, entry), "next_deadline": None}
    effects: list[Effect] = []
    if state.acked_at is None:
        updates["acked_at"] = at
        if state.kind == "alert":
            effects.append(Acked(max(0.0, (at - state.raised_at).total_seconds())))
    new = state.model_copy(update=updates)
    if status == "rejected" and state.role == "lead" and state.agency != JOINT_OFFICE and _reassigns(state):
        reassign = reassignment(new, response, at)
        new = new.model_copy(update={"reassigned_to": reassign.referral.referral_id if reassign.referral else None,
                                     "escalation": reassign.escalation})
        effects.append(reassign)
    return Outcome(new, applied=True, effects=tuple(effects))


def _reassigns(state: TrackedState) -> bool:
    # An alert and its lead referral are answered together; the referral carries what the
    # office needs, so it alone re-assigns (an alert without a lead referral re-assigns itself).
    return state.kind == "referral" or state.twin_id is None


_next_status = next_status


def reassignment(state: TrackedState, response: ReferralResponse, at: dt.datetime) -> Reassign:
    """The joint-conference office of the jurisdiction takes back a rejected lead duty (decided
    when the bus received the rejection, `at`)."""
    reason = f"{state.agency} rejected: {response.reason}"
    escalation = Escalation(
        escalation_id=escalation_id_for(state.id, "reassign"), referral_id=state.id, case_id=state.case_id,
        action="reassign", step=state.step, level=1, target_agency=JOINT_OFFICE,
        target_jurisdiction=state.jurisdiction, reason=reason, decided_at=at,
        ack_deadline=None, exercise=state.exercise, alert=state.alert, event_id=state.event_id,
        raised_at=state.raised_at)
    referral = None
    if state.referral is not None:
        r = state.referral
        rule_id = f"{r.rule_id}.reassigned"
        referral = r.model_copy(update={
            "referral_id": referral_id_for(r.event_id, JOINT_OFFICE, rule_id, "lead"),
            "agency": JOINT_OFFICE, "role": "lead", "rule_id": rule_id,
            "action": f"Re-assign: {reason}. Original duty: {r.action}",
            "constraints": (*r.constraints, f"reassigned_from:{r.referral_id}"),
        })
    return Reassign(escalation, referral)


# -- deadlines --------------------------------------------------------------------------------

def ladder(jurisdiction: str) -> tuple[Target, ...]:
    """Escalation levels after the receiver itself: the jurisdiction's joint-conference office,
    then the command centre of each parent jurisdiction, nearest first."""
    chain = catalog().chain(jurisdiction)
    return (Target(1, JOINT_OFFICE, jurisdiction),
            *(Target(i + 2, COMMAND_CENTER, parent) for i, parent in enumerate(chain[1:])))


def step_interval(deadlines: Deadlines, urgency: str) -> dt.timedelta:
    """Time each re-send or escalation gets to be answered: the urgency's ack deadline."""
    return deadlines.for_level(urgency).ack_within or DEFAULT_STEP


def is_due(state: TrackedState, now: dt.datetime) -> bool:
    return (state.kind == "alert" and state.status in WAITING and state.next_deadline is not None
            and now >= state.next_deadline)


def is_overdue(state: TrackedState, now: dt.datetime) -> bool:
    """Unanswered past its first deadline (the operators' gauge), whatever the ladder did since."""
    return (state.kind == "alert" and state.status in WAITING and state.ack_deadline is not None
            and now >= state.ack_deadline)


def next_escalation(state: TrackedState, now: dt.datetime, deadlines: Deadlines, resends: int) -> Escalation | None:
    """What to do about an alert whose deadline has passed: re-send it (`resends` times), then
    escalate one level per deadline. None when not due, or when the ladder is exhausted."""
    if not is_due(state, now):
        return None
    step = state.step + 1
    new_deadline = now + step_interval(deadlines, state.urgency)
    missed = state.next_deadline.isoformat() if state.next_deadline else "?"
    if state.resends < resends and state.level == 0:
        target = Target(0, state.target_agency, state.target_jurisdiction)
        action = "resend"
    else:
        nxt = [t for t in ladder(state.jurisdiction) if t.level == state.level + 1]
        if not nxt:
            return None
        target, action = nxt[0], "escalate"
    alert = state.alert.model_copy(update={"attempt": step + 1}) if state.alert else None
    return Escalation(
        escalation_id=escalation_id_for(state.id, step), referral_id=state.id, case_id=state.case_id,
        action=action, step=step, level=target.level, target_agency=target.agency,
        target_jurisdiction=target.jurisdiction, reason=f"no acknowledgement by {missed}",
        decided_at=now, ack_deadline=new_deadline, exercise=state.exercise, alert=alert,
        event_id=state.event_id, raised_at=state.raised_at)


def apply_escalation(state: TrackedState, escalation: Escalation) -> Outcome:
    """Record a re-send or escalation step once; a copy, an older step, or a step that raced an
    answer changes nothing (receivers may still see that page, which is harmless)."""
    if escalation.action == "reassign" or escalation.step <= state.step or state.status not in WAITING:
        return Outcome(state, applied=False)
    entry = HistoryEntry(at=escalation.decided_at, what=escalation.action, ref=str(escalation.escalation_id),
                         by=escalation.target_agency,
                         detail=f"level {escalation.level} {escalation.target_jurisdiction}")
    return Outcome(state.model_copy(update={
        "step": escalation.step, "level": escalation.level,
        "resends": state.resends + (escalation.action == "resend"),
        "target_agency": escalation.target_agency, "target_jurisdiction": escalation.target_jurisdiction,
        "next_deadline": escalation.ack_deadline, "history": (*state.history, entry), "escalation": escalation,
    }), applied=True)


def closes_with_case(state: TrackedState, case: CaseChange) -> bool:
    """Whether the police resolution of `case` closes `state`: every alert and referral of the case
    that an answer can still change. Those of the reports that opened or joined the case close
    whenever they arrive; any other one if it was raised no later than the resolution was reported
    (a duty raised after it concerns the found child, not the search, and stays open). The outcome
    does not depend on the order in which the topics are read."""
    if case_of(state) != case.case_id or state.status in FINAL or is_matched_clue(state):
        return False
    return not _outlives(state, case)


def _outlives(state: TrackedState, case: CaseChange) -> bool:
    return outlives_resolution(state.event_id, state.raised_at, (case.event_id, *case.grouped_reports),
                               case.resolved_at)


def outlives_resolution(event_id: uuid.UUID, raised_at: dt.datetime, case_reports: Collection[uuid.UUID],
                        resolved_at: dt.datetime | None) -> bool:
    """Whether an alert or referral of a resolved case stays open: it was raised after the
    resolution was reported (`CaseChange.resolved_at`) and is not of a report that opened or
    joined the case (`case_reports`: the case's `event_id` and `grouped_reports`). The one rule the
    alerts service closes by (`closes_with_case`) and keeps open by (`outlive`, `ungroup`), and
    publishes as `TrackedState.after_resolution` for readers to show."""
    return event_id not in case_reports and resolved_at is not None and raised_at > resolved_at


def resolution_may_change(state: TrackedState) -> bool:
    """Whether a police resolution of the state's case may still change it: an answer still can
    (not final), or it is an alert grouped under the case that may turn out to outlive it
    (`ungroup`)."""
    return state.status not in FINAL or (state.kind == "alert" and state.status == "grouped")


def ungroup(state: TrackedState, case: CaseChange, at: dt.datetime) -> TrackedState | None:
    """A further report's alert, grouped under `case` because it was read while the case was still
    open, that was raised after the resolution (`outlives_resolution`): it is about a child missing
    again, not the search the resolution ended, so it waits for its own answer from its own
    deadline (re-sent and escalated like any alert). None for any other state."""
    if state.kind != "alert" or state.status != "grouped" or case_of(state) != case.case_id:
        return None
    if not _outlives(state, case):
        return None
    entry = HistoryEntry(at=at, what="ungrouped", ref=f"case:{case.case_id}",
                         detail="raised after the case was resolved")
    return state.model_copy(update={"status": "sent", "next_deadline": state.ack_deadline, "grouped_under": None,
                                    "after_resolution": case.resolved_at, "history": (*state.history, entry)})


def outlive(state: TrackedState, case: CaseChange, at: dt.datetime) -> TrackedState | None:
    """An open alert or referral of `case`, resolved, that the resolution leaves open because it was
    raised after it (`outlives_resolution`: a new report, the found child's aftercare): marked with
    when the case was resolved, once, so that readers show it as such. None for any other state."""
    if (state.status in FINAL or state.after_resolution is not None or case_of(state) != case.case_id
            or is_matched_clue(state) or not _outlives(state, case)):
        return None
    entry = HistoryEntry(at=at, what="kept_open", ref=f"case:{case.case_id}",
                         detail="raised after the case was resolved")
    return state.model_copy(update={"after_resolution": case.resolved_at, "history": (*state.history, entry)})


def is_matched_clue(state: TrackedState) -> bool:
    """A clue's referral grouped under a case only because the clue's descriptors fit the case (the
    clue itself names no case, or another one): a match that may be wrong."""
    return state.kind == "referral" and state.grouped and _own_case(state) != state.case_id


def _own_case(state: TrackedState) -> uuid.UUID | None:
    """The case a referral's own event names (before any grouping)."""
    return referral_case(state.referral) if state.referral is not None else None


def release(state: TrackedState, case: CaseChange, at: dt.datetime) -> TrackedState | None:
    """A matched clue's referral (`is_matched_clue`) when the police resolve the case it was grouped
    under: the clue may be about another child, so the resolution does not close it. It returns to
    its own clue, open for its agency to answer. None for any other state."""
    if state.status in FINAL or not is_matched_clue(state) or state.case_id != case.case_id:
        return None
    entry = HistoryEntry(at=at, what="released", ref=f"case:{case.case_id}",
                         detail="the case was resolved; the clue stands on its own")
    return state.model_copy(update={"case_id": _own_case(state), "grouped": False,
                                    "history": (*state.history, entry)})


def close(state: TrackedState, at: dt.datetime, resolution: uuid.UUID) -> Outcome:
    """The case is resolved: nothing more about it is paged. Final states (done, rejected,
    grouped, closed) stay as they are."""
    if state.status in FINAL:
        return Outcome(state, applied=False)
    entry = HistoryEntry(at=at, what="closed", ref=f"resolution:{resolution}")
    return Outcome(state.model_copy(update={"status": "closed", "next_deadline": None,
                                            "history": (*state.history, entry)}), applied=True)
