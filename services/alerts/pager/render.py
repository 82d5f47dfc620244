"""A desk's notices (`bus.desk.Notice`) as the pager shows them: one line for people (rich markup),
or one JSON object (`--json`): the alert or escalation as on the bus, `{"page": ...}` for the rest.

The child's details are those the desk's agency may know, on a line of their own under the page;
the JSON carries the alert's projected subject narrowed the same way. Clues and closures say ids,
kinds, places and reasons only.
"""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape

from bus.desk import Child, Notice
from rules.projection import narrow
from schemas.alerts import Escalation, PoliceAlert


def _drill(exercise: bool) -> str:
    return " [EXERCISE]" if exercise else ""


def _at(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def text(notice: Notice) -> str:
    """One page or line (two when the child's details follow)."""
    line = _line(notice)
    if notice.marked and notice.after_resolution is not None:
        line += (f" · [bold]case {notice.case_id} was resolved at {_at(notice.after_resolution)}: this was "
                 "raised after it[/]")
    if notice.child is not None and notice.kind in ("alert", "resend", "escalation", "reassign"):
        line += "\n    " + child_line(notice.child)
    return line


def _line(notice: Notice) -> str:
    state, case, esc, alert = notice.state, notice.case, notice.escalation, notice.alert
    if notice.kind in ("alert", "resend") and alert is not None:
        kind = "ALERT" if notice.kind == "alert" else f"RE-SENT ALERT (attempt {alert.attempt})"
        deadline = esc.ack_deadline if esc is not None else alert.ack_deadline
        return (f"[bold red]{kind}[/]{_drill(alert.exercise)} {escape(alert.jurisdiction)}: {escape(alert.action)} "
                f"· ack by {_at(deadline)} · alert {alert.alert_id} case {alert.case_id}")
    if notice.kind in ("escalation", "reassign") and esc is not None:
        about = f" case {esc.case_id}" if esc.case_id else ""
        return (f"[bold yellow]{escape(esc.action.upper())}[/]{_drill(esc.exercise)} level {esc.level} "
                f"{escape(esc.target_jurisdiction)}: {escape(esc.reason)} · about {esc.referral_id}{about}")
    if notice.kind == "grouped" and state is not None:
        return (f"[cyan]GROUPED[/]{_drill(state.exercise)} under case {state.case_id}: further report "
                f"{state.event_id} ({escape(state.jurisdiction)}) · the case's alert {state.grouped_under} stands, "
                "no new page")
    if notice.kind == "clue" and case is not None and notice.clue is not None:
        clue = notice.clue
        return (f"[bold magenta]CLUE for case {case.case_id}[/]{_drill(case.exercise)}: {escape(clue.reason)} "
                f"· {escape(clue.kind)} in {escape(clue.jurisdiction)}, event {clue.event_id}")
    if notice.kind == "case_closed" and case is not None:
        return (f"[bold green]CASE CLOSED[/]{_drill(case.exercise)} case {case.case_id} "
                f"({escape(case.jurisdiction)}): {escape(case.outcome or 'resolved')} · no more pages about it "
                "(a new report after the resolution still pages)")
    raise ValueError(f"nothing to render for a {notice.kind} notice")


def child_line(child: Child) -> str:
    """The child's details, as the duty officer reads them (what is unknown is left out)."""
    parts = [f"age {child.age}" if child.age is not None else None, child.sex,
             f"last seen {escape(child.last_seen_place or '?')} at {child.last_seen_at or '?'}"
             if child.last_seen_place or child.last_seen_at else None,
             f"“{escape(child.description)}”" if child.description else None]
    return "child: " + " · ".join(p for p in parts if p)


def as_json(notice: Notice, agency: str) -> str:
    """The page as on the bus (the alert, or the escalation), or `{"page": kind, ...}` for a line."""
    body = _body(notice, agency)
    if notice.marked and notice.after_resolution is not None:
        body["after_resolution"] = {"case_id": str(notice.case_id), "resolved_at": notice.after_resolution.isoformat()}
    return json.dumps(body, ensure_ascii=False)


def _body(notice: Notice, agency: str) -> dict[str, Any]:
    state, case, esc, alert = notice.state, notice.case, notice.escalation, notice.alert
    if notice.kind in ("alert", "resend") and alert is not None:
        return _narrowed(alert, agency).model_dump(mode="json")
    if notice.kind in ("escalation", "reassign") and esc is not None:
        shown: Escalation = esc if esc.alert is None else esc.model_copy(update={"alert": _narrowed(esc.alert, agency)})
        return shown.model_dump(mode="json")
    if notice.kind == "grouped" and state is not None:
        return {"page": "grouped", "case_id": str(state.case_id), "alert_id": str(state.id),
                "event_id": str(state.event_id), "jurisdiction": state.jurisdiction,
                "case_alert_id": str(state.grouped_under), "exercise": state.exercise}
    if notice.kind == "clue" and case is not None and notice.clue is not None:
        clue = notice.clue
        return {"page": "clue", "case_id": str(case.case_id), "event_id": str(clue.event_id), "kind": clue.kind,
                "jurisdiction": clue.jurisdiction, "reason": clue.reason, "linked_at": clue.linked_at.isoformat(),
                "exercise": case.exercise}
    if notice.kind == "case_closed" and case is not None:
        return {"page": "case_closed", "case_id": str(case.case_id), "jurisdiction": case.jurisdiction,
                "outcome": case.outcome, "closed_at": case.changed_at.isoformat(), "exercise": case.exercise}
    raise ValueError(f"nothing to render for a {notice.kind} notice")


def _narrowed(alert: PoliceAlert, agency: str) -> PoliceAlert:
    return alert.model_copy(update={"subject": narrow(alert.subject, agency)})
