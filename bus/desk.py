"""What a duty desk is told, built from the decisions the alerts service publishes: the latest state
of each alert and referral (`alerts.states`, `TrackedState`) and of each case (`cases.changes`,
`CaseChange`). Pure: no broker, no storage, no clock.

The alerts service decides (grouped, closed, kept open after a resolution, re-sent, escalated,
re-assigned); a desk only renders, and remembers what it has already shown. Every reader of those
decisions renders them through this module: the terminal pager (`referral-bus page`), and the
console may too.

- `notices_of_state` / `notices_of_case`: what a state or a case change has to tell one desk, each
  `Notice` with an id that is the same whenever the same thing is told again (copies, restarts).
- `decide`: whether a desk shows a notice, given what it remembers of the notice's case
  (`CaseMemory`); once a desk has seen a case closed it shows nothing more about it but for the
  duties the service kept open after the resolution, and the first page of each of those is
  marked as raised after it.
- `Child`: what the desk may know of the child, from the need-to-know projection the alert or
  referral already carries, narrowed to the desk's own agency.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rules.projection import narrow
from schemas.alerts import CaseChange, Escalation, LinkedClue, PoliceAlert, TrackedState
from schemas.cases import case_of

NoticeKind = Literal["alert", "resend", "escalation", "reassign", "grouped", "clue", "case_closed"]
#: Notices about a duty to answer (re-sent, escalated, re-assigned), as opposed to lines for information.
PAGES: frozenset[NoticeKind] = frozenset({"alert", "resend", "escalation", "reassign"})


@dataclass(frozen=True)
class Desk:
    """Who is told: an agency, maybe only for one jurisdiction."""

    agency: str
    jurisdiction: str | None = None

    def sees(self, jurisdiction: str) -> bool:
        return self.jurisdiction in (None, jurisdiction)


@dataclass(frozen=True)
class Child:
    """The child's details a desk may know (need-to-know), each None when not given or not allowed."""

    age: int | None = None
    sex: str | None = None
    description: str | None = None
    last_seen_at: str | None = None
    last_seen_place: str | None = None

    @classmethod
    def of(cls, subject: Mapping[str, Any], agency: str) -> Child | None:
        """From a projected `subject` (a referral's, an alert's), narrowed to `agency`'s projection."""
        allowed = narrow(subject, agency)
        person = allowed.get("person") or {}
        place = (allowed.get("last_seen_location") or allowed.get("location") or {}).get("place")
        child = cls(age=person.get("age"), sex=person.get("sex"), description=allowed.get("description") or None,
                    last_seen_at=allowed.get("last_seen_at"), last_seen_place=place)
        return None if child == cls() else child


@dataclass(frozen=True)
class Notice:
    """One thing to tell a desk. `notice_id` is what the desk shows once; `needs_answer` is True
    for a page (an alert, a re-send, an escalation, a re-assignment) and False for a line."""

    notice_id: str
    kind: NoticeKind
    case_id: uuid.UUID | None
    needs_answer: bool
    #: The alert or referral this is about; the case for a clue or a closure.
    state: TrackedState | None = field(default=None, compare=False, repr=False)
    case: CaseChange | None = field(default=None, compare=False, repr=False)
    clue: LinkedClue | None = field(default=None, compare=False, repr=False)
    #: The alert as its receiver is paged (with the attempt), and the step that reached this desk.
    alert: PoliceAlert | None = field(default=None, compare=False, repr=False)
    escalation: Escalation | None = field(default=None, compare=False, repr=False)
    child: Child | None = field(default=None, compare=False)
    #: For a duty the service kept open after its case was resolved: when it was resolved.
    after_resolution: dt.datetime | None = None
    #: True when this desk is the case's owner (a closure is told to the owner, and wherever
    #: something about the case was shown).
    owner: bool = False
    #: Set by `decide` on the first page of a duty kept open after its case's resolution.
    marked: bool = False


def notices_of_state(state: TrackedState, desk: Desk) -> list[Notice]:
    """What one version of a tracked alert or referral tells `desk` (nothing if it is not addressed there)."""
    case_id = case_of(state.event_kind, state.event_id, state.case_id)
    common: dict[str, Any] = {"case_id": case_id, "state": state, "after_resolution": state.after_resolution}
    esc = state.escalation
    if (state.status == "rejected" and esc is not None and esc.action == "reassign"
            and esc.target_agency == desk.agency and desk.sees(esc.target_jurisdiction)):
        # A lead's rejection handed back to the joint office (a referral's, or an alert's without one).
        subject = state.referral.subject if state.referral is not None else esc.alert.subject if esc.alert else {}
        return [Notice(str(esc.escalation_id), "reassign", needs_answer=True, escalation=esc,
                       alert=esc.alert, child=Child.of(subject, desk.agency), **common)]
    if state.kind == "alert" and state.alert is not None:
        if state.status == "grouped":
            if state.agency != desk.agency or not desk.sees(state.jurisdiction):
                return []
            return [Notice(f"{state.id}#grouped", "grouped", needs_answer=False, **common)]
        if state.status != "sent" or state.target_agency != desk.agency or not desk.sees(state.target_jurisdiction):
            return []
        alert = esc.alert if esc is not None and esc.alert is not None else state.alert
        child = Child.of(alert.subject, desk.agency)
        if esc is None or esc.action == "resend":
            kind: NoticeKind = "alert" if alert.attempt == 1 else "resend"
            return [Notice(alert.delivery_id, kind, needs_answer=True, alert=alert, escalation=esc, child=child,
                           **common)]
        return [Notice(str(esc.escalation_id), "escalation", needs_answer=True, alert=alert, escalation=esc,
                       child=child, **common)]
    return []


def notices_of_case(case: CaseChange, desk: Desk) -> list[Notice]:
    """What one case change tells `desk`: its closure; while open, the clues linked to it (to its owner)."""
    owner = case.owner == desk.agency and desk.sees(case.jurisdiction)
    if case.status == "closed":
        return [Notice(f"case|{case.case_id}|closed", "case_closed", case.case_id, needs_answer=False, case=case,
                       owner=owner)]
    if not owner:
        return []
    # Ids, kind, jurisdiction and the match reason only: the case's descriptors stay out.
    return [Notice(f"clue|{case.case_id}|{clue.event_id}", "clue", case.case_id, needs_answer=False, case=case,
                   clue=clue, owner=True) for clue in case.clues]


@dataclass(frozen=True)
class CaseMemory:
    """What a desk remembers of one case."""

    closed: bool = False
    paged: bool = False  # something about the case was shown at this desk
    live: frozenset[str] = frozenset()  # duties kept open after the resolution, shown here (marked once)


def decide(notice: Notice, memory: CaseMemory | None) -> tuple[Notice | None, CaseMemory | None]:
    """Whether the desk shows `notice` (the notice, maybe marked; None: not shown), and what it
    remembers of the notice's case afterwards (None: a notice about no case)."""
    if notice.case_id is None:
        return notice, None
    memory = memory or CaseMemory()
    if notice.kind == "case_closed":
        show = not memory.closed and (notice.owner or memory.paged)
        return (notice if show else None), replace(memory, closed=True, paged=memory.paged or show)
    state_id = str(notice.state.id) if notice.state is not None else None
    if notice.after_resolution is not None and notice.kind in PAGES and state_id is not None:
        # A duty the service kept open after the resolution (a new report, the found child's
        # aftercare): it pages whatever the desk knows of the case, marked the first time.
        first = state_id not in memory.live
        return (replace(notice, marked=first),
                replace(memory, paged=True, live=memory.live | {state_id}))
    if memory.closed:
        # The child is found: anything else about the case still in flight is dropped.
        return None, memory
    return notice, replace(memory, paged=True)
