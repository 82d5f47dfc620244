"""The report's figures, computed from decoded messages: pure and synchronous (no broker).

Scope: referrals whose `jurisdiction` is the report's and whose `reported_at` falls in the
report's year, counted in China Standard Time (the plans' calendar). Drills (`exercise=true`)
are left out of every figure and counted on their own. Topics may hold copies of a referral
after a crash (at-least-once delivery): copies are dropped by `referral_id` and counted, and
escalations by their own ids.

Answers are the ones the alerts service applied, as it published them in the history of each
tracked state (`alerts.states`), at the time the bus received them (`applied_answers`): an answer
it refused (an agency not entitled, a final state, not an answer; `answers.refused`) counts for
nothing, and a sender's own `responded_at` never decides whether an answer was on time.
"""

from __future__ import annotations

import datetime as dt
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from schemas.alerts import ANSWERS, CaseChange, Escalation, PoliceAlert, TrackedState
from schemas.referrals import Referral

CST = dt.timezone(dt.timedelta(hours=8), "CST")

#: Tracked states that close a referral (the alerts service's view).
CLOSED_STATES = frozenset({"done", "closed"})



@dataclass(frozen=True)
class AppliedAnswer:
    """An answer the alerts service applied to an alert or referral, at the time the bus received it."""

    referral_id: uuid.UUID
    response_id: str
    answer: str
    at: dt.datetime
    exercise: bool = False


def applied_answers(states: Iterable[TrackedState]) -> list[AppliedAnswer]:
    """Every answer recorded in the tracked states (the latest state of each id), as applied.

    Only applied answers are in a history under their answer's name: a refused one is not there
    at all, and one recorded as ignored (before refusals had their topic) is named so."""
    latest: dict[uuid.UUID, TrackedState] = {}
    for state in states:  # compacted topic: the last message per id is the current state
        latest[state.id] = state
    return [AppliedAnswer(s.id, h.ref or f"{s.id}|{h.at.isoformat()}", h.what, h.at, s.exercise)
            for s in latest.values() for h in s.history if h.what in ANSWERS]


@dataclass(frozen=True)
class AgencyRow:
    """One member unit's line of the report."""

    agency: str
    received: int
    by_kind: dict[str, int]
    acknowledged_on_time: int
    acknowledged_late: int
    not_acknowledged: int
    no_deadline: int  # referrals without an ack_by: nothing to be on time for
    rejected: int  # refused by the agency: neither answered on time nor late, counted as what it is
    median_ack_minutes: float | None
    escalations: int
    open: int
    drills: int

    @property
    def on_time_rate(self) -> float | None:
        due = self.acknowledged_on_time + self.acknowledged_late + self.not_acknowledged
        return self.acknowledged_on_time / due if due else None

    @property
    def late_or_unanswered(self) -> int:
        return self.acknowledged_late + self.not_acknowledged


@dataclass(frozen=True)
class Report:
    jurisdiction: str
    year: int
    rows: tuple[AgencyRow, ...]
    kinds: tuple[str, ...]
    referrals: int
    drills: int
    duplicates_dropped: int
    out_of_scope: int
    open_cases: int | None = None  # missing-child cases still open (cases.changes), when the topic had any

    def row(self, agency: str) -> AgencyRow:
        return next(r for r in self.rows if r.agency == agency)

    def total(self) -> AgencyRow:
        """Every agency's line added up (the median over agencies is not a median: left empty)."""
        def add(field: str) -> int:
            return sum(int(getattr(r, field)) for r in self.rows)

        kinds: Counter[str] = Counter()
        for r in self.rows:
            kinds.update(r.by_kind)
        return AgencyRow(agency="total", received=add("received"), by_kind=dict(sorted(kinds.items())),
                         acknowledged_on_time=add("acknowledged_on_time"), acknowledged_late=add("acknowledged_late"),
                         not_acknowledged=add("not_acknowledged"), no_deadline=add("no_deadline"),
                         rejected=add("rejected"), median_ack_minutes=None, escalations=add("escalations"),
                         open=add("open"), drills=add("drills"))


def in_year(t: dt.datetime, year: int) -> bool:
    return t.astimezone(CST).year == year


def compute(
    referrals: Iterable[Referral],
    answers: Iterable[AppliedAnswer],
    escalations: Iterable[Escalation],
    jurisdiction: str,
    year: int,
    *,
    alerts: Iterable[PoliceAlert] = (),
    states: Iterable[TrackedState] = (),
    cases: Iterable[CaseChange] = (),
) -> Report:
    """The report of `jurisdiction` for `year`.

    - `answers`: those the alerts service applied (`applied_answers(states)`), at bus time;
    - rejected: the agency rejected the referral (whenever it did): counted as a rejection, not
      as an answer on time or late;
    - acknowledged on time: otherwise, the first answer (acknowledged, accepted, done) the bus
      received no later than the referral's `ack_by`; a referral without `ack_by` is counted
      under `no_deadline` instead;
    - median ack time: minutes from `reported_at` to that first answer, over answered referrals;
    - escalations: distinct escalations (re-sends included) about the unit's referrals;
    - open: by the alerts service's tracked states (status not done or closed); a referral it
      has no state of is open.

    An answer or escalation may name a police alert instead of the command centre's lead
    referral (answering either answers both): `alerts` maps one to the other.
    """
    seen: set[uuid.UUID] = set()
    dropped = drills_total = out_of_scope = 0
    scoped: list[Referral] = []
    drills: Counter[str] = Counter()
    for r in referrals:
        if r.jurisdiction != jurisdiction or not in_year(r.reported_at, year):
            out_of_scope += 1
            continue
        if r.referral_id in seen:
            dropped += 1
            continue
        seen.add(r.referral_id)
        if r.exercise:
            drills[r.agency] += 1
            drills_total += 1
            continue
        scoped.append(r)
    by_id = {r.referral_id: r for r in scoped}

    # An alert id stands for its lead referral.
    alias: dict[uuid.UUID, uuid.UUID] = {}
    for a in alerts:
        if a.lead_referral_id is not None:
            alias[a.alert_id] = a.lead_referral_id

    def target(ref: uuid.UUID) -> uuid.UUID:
        return alias.get(ref, ref)

    first_answer: dict[uuid.UUID, dt.datetime] = {}
    rejected: set[uuid.UUID] = set()
    for applied in answers:
        rid = target(applied.referral_id)
        if applied.exercise or rid not in by_id:
            continue
        prev = first_answer.get(rid)
        if prev is None or applied.at < prev:
            first_answer[rid] = applied.at
        if applied.answer == "rejected":
            rejected.add(rid)

    escalated: Counter[uuid.UUID] = Counter()
    escalation_ids: set[uuid.UUID] = set()
    for esc in escalations:
        if esc.escalation_id in escalation_ids:
            continue
        escalation_ids.add(esc.escalation_id)
        rid = target(esc.referral_id)
        if not esc.exercise and rid in by_id:
            escalated[rid] += 1

    latest_state: dict[uuid.UUID, TrackedState] = {}
    for st in states:  # compacted topic: the last message per id is the current state
        if target(st.id) in by_id:
            latest_state[target(st.id)] = st

    def is_open(rid: uuid.UUID) -> bool:
        st = latest_state.get(rid)
        return st is None or st.status not in CLOSED_STATES

    per_agency: dict[str, list[Referral]] = defaultdict(list)
    for r in scoped:
        per_agency[r.agency].append(r)
    rows: list[AgencyRow] = []
    for agency in sorted(set(per_agency) | set(drills)):
        mine = per_agency.get(agency, [])
        on_time = late = missing = no_deadline = refused = 0
        minutes: list[float] = []
        for r in mine:
            answered = first_answer.get(r.referral_id)
            if answered is not None:
                minutes.append((answered - r.reported_at).total_seconds() / 60)
            if r.referral_id in rejected:
                refused += 1
            elif r.ack_by is None:
                no_deadline += 1
            elif answered is None:
                missing += 1
            elif answered <= r.ack_by:
                on_time += 1
            else:
                late += 1
        rows.append(AgencyRow(
            agency=agency,
            received=len(mine),
            by_kind=dict(sorted(Counter(r.kind for r in mine).items())),
            acknowledged_on_time=on_time,
            acknowledged_late=late,
            not_acknowledged=missing,
            no_deadline=no_deadline,
            rejected=refused,
            median_ack_minutes=round(statistics.median(minutes), 1) if minutes else None,
            escalations=sum(escalated[r.referral_id] for r in mine),
            open=sum(1 for r in mine if is_open(r.referral_id)),
            drills=drills[agency],
        ))

    latest_case: dict[uuid.UUID, CaseChange] = {}
    for c in cases:
        latest_case[c.case_id] = c
    in_scope_cases = [c for c in latest_case.values()
                      if c.jurisdiction == jurisdiction and in_year(c.opened_at, year) and not c.exercise]
    open_cases = sum(1 for c in in_scope_cases if c.status == "open") if latest_case else None

    return Report(
        jurisdiction=jurisdiction, year=year, rows=tuple(rows),
        kinds=tuple(sorted({r.kind for r in scoped})), referrals=len(scoped), drills=drills_total,
        duplicates_dropped=dropped, out_of_scope=out_of_scope, open_cases=open_cases,
    )
