"""Missing-child cases, free of faust: open on a report, link fitting clues, close on a resolution.

一长三包责任制: 案件不破，专案组不得撤销 — a case closes only on a police resolution event
(`case_resolved` from police or a police sub-unit); every other attempt is refused.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rules.catalog import COMMAND_CENTER, catalog, is_police
from schemas.alerts import CaseChange, HistoryEntry, LinkedClue, TrackedState, alert_id_for, descriptors_of
from schemas.cases import report_case
from schemas.events import CaseResolution, Event, MissingChildReport


class CasePolicy(BaseModel):
    """How clues are matched to cases (services/alerts/cases.yaml), validated at load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clue_kinds: frozenset[str]
    window: dt.timedelta = Field(gt=dt.timedelta(0))
    lead: dt.timedelta = Field(default=dt.timedelta(0), ge=dt.timedelta(0))
    age_tolerance: int = Field(default=2, ge=0, le=10)
    neighbours: tuple[tuple[str, str], ...] = ()

    @field_validator("clue_kinds")
    @classmethod
    def _kinds_known(cls, kinds: frozenset[str]) -> frozenset[str]:
        unknown = sorted(kinds - set(catalog().event_kinds))
        if unknown:
            raise ValueError(f"unknown event kind(s): {', '.join(unknown)}")
        return kinds

    @field_validator("neighbours")
    @classmethod
    def _jurisdictions_known(cls, pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        for pair in pairs:
            for code in pair:
                if code not in catalog().jurisdictions:
                    raise ValueError(f"unknown jurisdiction {code!r}")
        return pairs

    def is_neighbour(self, a: str, b: str) -> bool:
        """Same jurisdiction, parent and child in the catalog, or listed as neighbours."""
        if a == b:
            return True
        js = catalog().jurisdictions
        if js[a].parent == b or js[b].parent == a:
            return True
        return (a, b) in self.neighbours or (b, a) in self.neighbours

    @classmethod
    def load(cls, path: Path) -> CasePolicy:
        return _load(Path(path))


@cache
def _load(path: Path) -> CasePolicy:
    return CasePolicy.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Refusal:
    """A close attempt that is not a police resolution of an open case."""

    case: CaseChange | None
    reason: str
    counted: bool = True


def open_case(report: MissingChildReport) -> CaseChange:
    """The case a missing-child report opens, owned by the command centre's special case group."""
    return CaseChange(
        case_id=report_case(report), change="opened", changed_at=report.reported_at,
        jurisdiction=report.jurisdiction, owner=COMMAND_CENTER, event_id=report.event_id,
        alert_id=alert_id_for(report.event_id), opened_at=report.reported_at, exercise=report.exercise,
        descriptors=descriptors_of(report),
    )


def group_report(case: CaseChange, report: MissingChildReport) -> CaseChange | None:
    """A further report about an open case is grouped under it (no second case, no new page)."""
    if report.event_id == case.event_id or report.event_id in case.grouped_reports or case.status != "open":
        return None
    return case.model_copy(update={"change": "report_grouped", "changed_at": report.reported_at,
                                   "grouped_reports": (*case.grouped_reports, report.event_id),
                                   "last_clue": None, "refusal": None})


def match_reason(case: CaseChange, event: Event, policy: CasePolicy) -> str | None:
    """Why `event` is a clue about `case`, or None. Unknown descriptors neither fit nor contradict,
    but at least one of age, sex or place has to fit."""
    if case.status != "open" or case.exercise != event.exercise:
        return None  # drills never mix with real cases
    if event.case_id == case.case_id:
        return "names the case"
    if event.kind not in policy.clue_kinds or not policy.is_neighbour(case.jurisdiction, event.jurisdiction):
        return None
    d, seen = case.descriptors, descriptors_of(event)
    reasons = ["same jurisdiction" if event.jurisdiction == case.jurisdiction
               else f"neighbouring jurisdiction {event.jurisdiction}"]
    if d.last_seen_at is not None:
        if not (d.last_seen_at - policy.lead <= event.occurred_at <= d.last_seen_at + policy.window):
            return None
        hours = (event.occurred_at - d.last_seen_at).total_seconds() / 3600
        reasons.append(f"{hours:.1f} h after last seen")
    fits = 0
    if d.age is not None and seen.age is not None:
        if abs(d.age - seen.age) > policy.age_tolerance:
            return None
        fits += 1
        reasons.append(f"age {seen.age} ~ {d.age}")
    if d.sex not in (None, "unknown") and seen.sex not in (None, "unknown"):
        if d.sex != seen.sex:
            return None
        fits += 1
        reasons.append(f"sex {seen.sex}")
    if d.place and seen.place and _same_place(d.place, seen.place):
        fits += 1
        reasons.append(f"place {seen.place}")
    return "; ".join(reasons) if fits else None


def _same_place(a: str, b: str) -> bool:
    a, b = a.strip().lower(), b.strip().lower()
    return a in b or b in a


def best_match(cases: Iterable[CaseChange], event: Event, policy: CasePolicy) -> tuple[CaseChange, str] | None:
    """The open case `event` fits best, with the reason: the case it names if it names an open
    one (the reporter knows better than any descriptor), else the one with the most descriptors
    fitting, then the most recent."""
    found = [(c, r) for c in cases if (r := match_reason(c, event, policy)) is not None]
    if not found:
        return None
    return max(found, key=lambda cr: (cr[0].case_id == event.case_id, cr[1].count(";"), cr[0].opened_at))


def link_clue(case: CaseChange, event: Event, reason: str, at: dt.datetime,
              agencies: tuple[str, ...] = ()) -> CaseChange | None:
    """The case with the clue linked and forwarded to its owner; None if already linked."""
    if any(c.event_id == event.event_id for c in case.clues):
        return None
    clue = LinkedClue(event_id=event.event_id, kind=event.kind, jurisdiction=event.jurisdiction,
                      reason=reason, linked_at=at, referral_agencies=agencies)
    return case.model_copy(update={"change": "clue_linked", "changed_at": at, "clues": (*case.clues, clue),
                                   "last_clue": clue, "refusal": None})


def refer_clue(case: CaseChange, event_id: uuid.UUID, agency: str, at: dt.datetime) -> CaseChange | None:
    """The case with `agency` among a linked clue's referral agencies: a referral of the clue that
    reached the alerts service after the clue was linked. None if the clue is not linked here or
    already lists the agency."""
    for i, clue in enumerate(case.clues):
        if clue.event_id == event_id:
            if agency in clue.referral_agencies:
                return None
            referred = clue.model_copy(update={"referral_agencies": tuple(sorted({*clue.referral_agencies, agency}))})
            return case.model_copy(update={"change": "clue_referred", "changed_at": at,
                                           "clues": (*case.clues[:i], referred, *case.clues[i + 1:]),
                                           "last_clue": None, "refusal": None})
    return None


def group_referral(state: TrackedState, case_id: uuid.UUID, reason: str, at: dt.datetime) -> TrackedState | None:
    """A referral of a clue linked to an open case, grouped under that case: it carries the
    case id and the `grouped` flag and never gets a deadline of its own (the case's owner has the
    clue, with the match reason); its agency still answers it. None if already grouped there."""
    if state.kind != "referral" or (state.grouped and state.case_id == case_id):
        return None
    entry = HistoryEntry(at=at, what="grouped", ref=f"case:{case_id}", detail=reason)
    return state.model_copy(update={"case_id": case_id, "grouped": True, "next_deadline": None,
                                    "history": (*state.history, entry)})


def close_case(case: CaseChange | None, resolution: Event, at: dt.datetime) -> CaseChange | Refusal:
    """Close on a police `case_resolved`; anything else is a `Refusal` (to be counted)."""
    if not isinstance(resolution, CaseResolution):
        return Refusal(case, f"{resolution.kind} cannot close a case")
    if case is None:
        return Refusal(None, "no such case")
    if not is_police(resolution.reporter.agency):
        refusal = f"only police close a case (reporter {resolution.reporter.agency or 'public'})"
        return Refusal(case.model_copy(update={"change": "close_refused", "changed_at": at, "refusal": refusal,
                                               "last_clue": None}), refusal)
    if case.status == "closed":
        # The same resolution again is a replay, not an attempt.
        return Refusal(None, "already closed", counted=case.closed_by != resolution.event_id)
    if case.exercise != resolution.exercise:
        return Refusal(case.model_copy(update={"change": "close_refused", "changed_at": at,
                                               "refusal": "a drill and a real case never close each other",
                                               "last_clue": None}), "exercise mismatch")
    return case.model_copy(update={"change": "closed", "changed_at": at, "status": "closed",
                                   "closed_by": resolution.event_id, "resolved_at": resolution.reported_at,
                                   "outcome": resolution.outcome,
                                   "last_clue": None, "refusal": None})


def case_key(case_id: uuid.UUID) -> str:
    return str(case_id)
