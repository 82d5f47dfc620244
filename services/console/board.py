"""What a desk sees, computed from the bus's published decisions: pure, no broker, no clock.

The console holds the latest `TrackedState` of every alert and referral (`alerts.states`), every
`CaseChange` (`cases.changes`) and every `CaseBroadcast` (`broadcast.state`), and renders them
for one viewer (an agency, maybe scoped to jurisdictions). It never re-derives a decision the
alerts service published (DECISIONS.md 1): status, grouping, closing, who it was addressed and
escalated to all come from the states as they are.

Need-to-know: a referral's `subject` is already its agency's projection; the details of an
alert come from the command centre's lead referral beside it (its twin), narrowed again to the
viewer's own projection (an escalation may show the card to another agency).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bus.presentation import local_time, plan_title
from rules.catalog import is_police
from rules.projection import paths_for
from schemas.alerts import ANSWERS, FINAL_STATUSES, CaseChange, HistoryEntry, TrackedState
from schemas.alerts import answers_allowed as shared_answers_allowed
from schemas.broadcast import CaseBroadcast
from schemas.references import short_ref

Json = dict[str, Any]
PendingStatus = Literal["sending", "queued", "refused"]


class Viewer(Protocol):
    """Who looks: an agency code, maybe scoped to some jurisdictions (auth.Session)."""

    @property
    def agency(self) -> str: ...

    def sees(self, *jurisdictions: str) -> bool: ...


@dataclass(frozen=True)
class PendingAnswer:
    """An answer given here that the bus has not recorded yet (the console's outbox)."""

    response_id: str
    referral_id: str
    answer: str
    status: PendingStatus
    officer: str | None = None
    error: str | None = None


@dataclass
class BusState:
    """The latest decision per key of the topics the console reads, with an index by case."""

    states: dict[str, TrackedState] = field(default_factory=dict)
    cases: dict[str, CaseChange] = field(default_factory=dict)
    broadcasts: dict[str, CaseBroadcast] = field(default_factory=dict)
    by_case: dict[str, set[str]] = field(default_factory=dict)

    def put_state(self, state: TrackedState) -> None:
        key = str(state.id)
        before = self.states.get(key)
        if before is not None and before.case_id is not None and before.case_id != state.case_id:
            self.by_case.get(str(before.case_id), set()).discard(key)
        self.states[key] = state
        if state.case_id is not None:
            self.by_case.setdefault(str(state.case_id), set()).add(key)

    def of_case(self, case_id: uuid.UUID | str | None) -> list[TrackedState]:
        if case_id is None:
            return []
        keys = self.by_case.get(str(case_id), set())
        return sorted((self.states[k] for k in keys if k in self.states), key=lambda s: (s.raised_at, str(s.id)))

    def affected(self, what: Literal["state", "case", "broadcast"], key: str) -> set[str]:
        """The tracked ids whose view a change may alter: the state itself and everything of its
        case (a card lists every duty of the case, its clues and its broadcast rings)."""
        if what == "state":
            state = self.states.get(key)
            ids = {key}
            if state is not None and state.case_id is not None:
                ids |= self.by_case.get(str(state.case_id), set())
            return ids
        return set(self.by_case.get(key, set()))


# -- names, times, references ----------------------------------------------------------------

def action_zh(model: Any) -> str:
    """The action in the clause's own Chinese words (b-rules adds `action_zh`); "" until then."""
    value = getattr(model, "action_zh", "") if model is not None else ""
    return value if isinstance(value, str) else ""


# -- entitlement and visibility --------------------------------------------------------------

def visible(state: TrackedState, viewer: Viewer) -> bool:
    """The agency was addressed, re-sent or escalated to (`addressed_to`), within the desk's scope."""
    return viewer.agency in state.addressed_to() and viewer.sees(state.jurisdiction, state.target_jurisdiction)


def may_answer(state: TrackedState, viewer: Viewer) -> bool:
    return visible(state, viewer) and state.status not in FINAL_STATUSES


def may_close(case: CaseChange | None, viewer: Viewer) -> bool:
    """The police close an open case (一长三包: only their resolution closes it), within the desk's scope."""
    return case is not None and case.status == "open" and is_police(viewer.agency) and viewer.sees(case.jurisdiction)


def answers_allowed(status: str) -> list[str]:
    """The answers that still change something, as the alerts service applies them."""
    return shared_answers_allowed(status)


def on_board(state: TrackedState) -> bool:
    """A live-board card: an alert, not a further report grouped under its case's alert."""
    return state.kind == "alert" and state.status != "grouped"


def twin_folded(state: TrackedState, bus: BusState, viewer: Viewer) -> bool:
    """The command centre's lead referral beside an alert the viewer sees: shown on the alert's
    card (answering either answers both), not as a second item."""
    if state.kind != "referral" or state.twin_id is None:
        return False
    alert = bus.states.get(str(state.twin_id))
    return alert is not None and visible(alert, viewer)


# -- need-to-know ----------------------------------------------------------------------------

def restrict(subject: Mapping[str, Any], paths: Iterable[str]) -> Json:
    """The part of a subject an agency's projection allows: `person` keeps the whole object,
    `person.age` one field of it, a top-level path its value."""
    out: Json = {}
    for path in paths:
        head, _, tail = path.partition(".")
        if head not in subject:
            continue
        value = subject[head]
        if not tail:
            out[head] = value
        elif isinstance(value, Mapping) and tail in value:
            out.setdefault(head, {})[tail] = value[tail]
    return out


def child_details(state: TrackedState, bus: BusState, viewer: Viewer) -> Json:
    """What the viewer may know about the child of an alert (or the person of a referral)."""
    paths = paths_for(viewer.agency)
    source: Mapping[str, Any] = {}
    if state.referral is not None:
        source = state.referral.subject
    elif state.twin_id is not None and (twin := bus.states.get(str(state.twin_id))) is not None \
            and twin.referral is not None:
        source = twin.referral.subject
    subject = restrict(source, paths)
    if state.alert is not None:
        # The alert's own descriptors, where the referral beside it is not (yet) here.
        d = state.alert.descriptors
        fallback: Json = {"person": {k: v for k, v in (("age", d.age), ("sex", d.sex)) if v is not None},
                          "last_seen_location": {"place": d.place} if d.place else {},
                          "last_seen_at": d.last_seen_at.isoformat() if d.last_seen_at else None}
        for key, value in restrict(fallback, paths).items():
            if isinstance(value, dict):
                subject.setdefault(key, {})
                for k, v in value.items():
                    subject[key].setdefault(k, v)
            elif value is not None:
                subject.setdefault(key, value)
    person = subject.get("person") or {}
    seen_at = subject.get("last_seen_location") or subject.get("location") or {}
    last_seen_at = subject.get("last_seen_at") or subject.get("occurred_at")
    return {
        "age": person.get("age"), "sex": person.get("sex"), "name": person.get("name"),
        "features": person.get("distinguishing_features"),
        "description": subject.get("description"),
        "last_seen_at": local_time(_parse(last_seen_at), state.jurisdiction),
        "place": seen_at.get("place"), "address": seen_at.get("address"),
        "lat": seen_at.get("lat"), "lon": seen_at.get("lon"),
    }


def _parse(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def broadcast_rings(bus: BusState, case_id: uuid.UUID | None) -> Json | None:
    """The broadcast circles of the case's current alert (km), the last one current; None when no
    broadcast is active."""
    if case_id is None:
        return None
    b = bus.broadcasts.get(str(case_id))
    if b is None or not b.active:
        return None
    radii = [m.radius_km for m in b.alert_messages if m.radius_km]
    if not radii:
        return None
    return {"rings_km": sorted(set(radii)), "current_km": radii[-1], "exercise": b.exercise}


# -- cards and rows --------------------------------------------------------------------------

def _answers(history: Iterable[HistoryEntry], jurisdiction: str) -> list[Json]:
    """Answers given, once each (an answer to an alert is recorded on its twin referral too)."""
    out: dict[str, Json] = {}
    for h in history:
        if h.what in ANSWERS:
            out.setdefault(h.ref or f"{h.what}|{h.at}", {"what": h.what, "agency": h.by, "officer": h.officer,
                                                         "at": local_time(h.at, jurisdiction)})
    return sorted(out.values(), key=lambda a: a["at"]["ms"] if a["at"] else 0)


def _timeline(state: TrackedState) -> list[Json]:
    out = []
    for h in state.history:
        what = h.what.split(" ")[0]
        out.append({"what": what, "ignored": "(ignored" in h.what, "agency": h.by, "officer": h.officer,
                    "detail": h.detail if what in ("resend", "escalate") else None,
                    "at": local_time(h.at, state.jurisdiction)})
    return out


def countdown(state: TrackedState) -> Json | None:
    """The deadline the desk races while nobody has answered: the current step's (after a re-send
    or an escalation), else the acknowledgement deadline."""
    if state.status != "sent":
        return None
    deadline = state.next_deadline or state.ack_deadline
    return local_time(deadline, state.jurisdiction)


def _pending(pending: Mapping[str, list[PendingAnswer]], state: TrackedState) -> list[Json]:
    return [{"response_id": p.response_id, "answer": p.answer, "status": p.status, "error": p.error}
            for p in pending.get(str(state.id), []) if not state.has(p.response_id)]


def _due_by(state: TrackedState, bus: BusState) -> dt.datetime | None:
    referral = state.referral
    if referral is None and state.twin_id is not None and (twin := bus.states.get(str(state.twin_id))):
        referral = twin.referral
    return referral.due_by if referral is not None else None


def is_overdue(state: TrackedState, bus: BusState, now: dt.datetime) -> bool:
    if state.status == "sent":
        deadline = state.ack_deadline
        return deadline is not None and now >= deadline
    due = _due_by(state, bus)
    return state.status in ("acknowledged", "accepted") and due is not None and now >= due


def _citation(state: TrackedState) -> Json | None:
    c = state.referral.citation if state.referral is not None else (state.alert.citation if state.alert else None)
    if c is None:
        return None
    return {"title": plan_title(c.file), "clause": c.clause}


def card(state: TrackedState, bus: BusState, viewer: Viewer,
         pending: Mapping[str, list[PendingAnswer]]) -> Json:
    """The live-board card of an alert: the child, the map, the case's clues and duties, answers."""
    case = bus.cases.get(str(state.case_id)) if state.case_id else None
    duties = []
    further = []
    for s in bus.of_case(state.case_id):
        if s.kind == "alert" and s.status == "grouped":
            further.append({"ref": short_ref(s.jurisdiction, s.event_id), "raised": local_time(s.raised_at,
                                                                                                s.jurisdiction)})
        if s.id == state.id or (s.kind == "referral" and s.id == state.twin_id):
            continue
        duties.append({"id": str(s.id), "ref": short_ref(s.jurisdiction, s.id), "kind": s.kind,
                       "agency": s.agency, "role": s.role, "status": s.status, "event_kind": s.event_kind,
                       "action": s.referral.action if s.referral else (s.alert.action if s.alert else ""),
                       "action_zh": action_zh(s.referral or s.alert), "grouped": s.grouped,
                       "answers": _answers(s.history, s.jurisdiction)})
    alert = state.alert
    history = list(state.history)
    twin = bus.states.get(str(state.twin_id)) if state.twin_id else None
    return {
        "id": str(state.id), "ref": short_ref(state.jurisdiction, state.id), "kind": state.kind,
        "case_id": str(state.case_id) if state.case_id else None,
        "case_ref": short_ref(state.jurisdiction, state.case_id) if state.case_id else None,
        "case_status": case.status if case else None,
        "may_close": may_close(case, viewer),
        "jurisdiction": state.jurisdiction, "agency": state.agency, "urgency": state.urgency,
        "exercise": state.exercise, "status": state.status, "step": state.step, "level": state.level,
        "resends": state.resends, "target_agency": state.target_agency,
        "target_jurisdiction": state.target_jurisdiction,
        "action": alert.action if alert else (state.referral.action if state.referral else ""),
        "action_zh": action_zh(alert or state.referral),
        "raised": local_time(state.raised_at, state.jurisdiction),
        "ack_deadline": local_time(state.ack_deadline, state.jurisdiction),
        "countdown": countdown(state),
        "acked_at": local_time(state.acked_at, state.jurisdiction),
        "child": child_details(state, bus, viewer),
        "broadcast": broadcast_rings(bus, state.case_id),
        "clues": [{"ref": short_ref(c.jurisdiction, c.event_id), "kind": c.kind, "jurisdiction": c.jurisdiction,
                   "reason": c.reason, "linked": local_time(c.linked_at, state.jurisdiction),
                   "agencies": list(c.referral_agencies)} for c in (case.clues if case else ())],
        "further_reports": further,
        "duties": duties,
        "answers": _answers(history + (list(twin.history) if twin else []), state.jurisdiction),
        "timeline": _timeline(state),
        "citation": _citation(twin or state),
        "allowed": answers_allowed(state.status) if may_answer(state, viewer) else [],
        "pending": _pending(pending, state),
    }


def row(state: TrackedState, bus: BusState, viewer: Viewer, pending: Mapping[str, list[PendingAnswer]],
        now: dt.datetime) -> Json:
    """A worklist line: any open alert or referral of the agency."""
    subject = child_details(state, bus, viewer)
    return {
        "id": str(state.id), "ref": short_ref(state.jurisdiction, state.id), "kind": state.kind,
        "event_kind": state.event_kind, "jurisdiction": state.jurisdiction,
        "case_id": str(state.case_id) if state.case_id else None,
        "case_ref": short_ref(state.jurisdiction, state.case_id) if state.case_id else None,
        "role": state.role, "urgency": state.urgency, "exercise": state.exercise, "status": state.status,
        "grouped": state.grouped,
        "action": state.referral.action if state.referral else (state.alert.action if state.alert else ""),
        "action_zh": action_zh(state.referral or state.alert),
        "raised": local_time(state.raised_at, state.jurisdiction),
        "ack_by": local_time(state.ack_deadline, state.jurisdiction),
        "due_by": local_time(_due_by(state, bus), state.jurisdiction),
        "overdue": is_overdue(state, bus, now), "open": state.status not in FINAL_STATUSES,
        "age": subject["age"], "sex": subject["sex"], "place": subject["place"],
        "citation": _citation(state),
        "allowed": answers_allowed(state.status) if may_answer(state, viewer) else [],
        "pending": _pending(pending, state),
    }


def recent(state: TrackedState, now: dt.datetime, hours: float) -> bool:
    """A finished alert stays on the board for a while (the desk sees how it ended)."""
    if state.status not in FINAL_STATUSES:
        return True
    last = state.history[-1].at if state.history else state.raised_at
    return now - last <= dt.timedelta(hours=hours)


def view(state: TrackedState, bus: BusState, viewer: Viewer, pending: Mapping[str, list[PendingAnswer]],
         now: dt.datetime, recent_hours: float) -> Json:
    """What one tracked id is for this viewer: a board card, a worklist row, both, or nothing."""
    out: Json = {"id": str(state.id), "card": None, "row": None}
    if not visible(state, viewer):
        return out
    if on_board(state) and recent(state, now, recent_hours):
        out["card"] = card(state, bus, viewer, pending)
    if state.status not in FINAL_STATUSES and not twin_folded(state, bus, viewer) and state.status != "grouped":
        out["row"] = row(state, bus, viewer, pending, now)
    return out


def snapshot(bus: BusState, viewer: Viewer, pending: Mapping[str, list[PendingAnswer]], now: dt.datetime,
             recent_hours: float) -> list[Json]:
    """Every card and row of the viewer, oldest first."""
    out = []
    for state in sorted(bus.states.values(), key=lambda s: (s.raised_at, str(s.id))):
        v = view(state, bus, viewer, pending, now, recent_hours)
        if v["card"] is not None or v["row"] is not None:
            out.append(v)
    return out
