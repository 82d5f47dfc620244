"""The alerts service's handlers: decode a message, call the pure core, store, and send.

Free of faust: they take an `AlertStore` and a `Sender` (`store.py`), so tests run them over plain
dicts. The agents (`agents.py`) feed them one message at a time, after the tables are restored.

Ordering, for at-least-once without transactions: every output is sent and its delivery awaited
before the state change it implies is stored, so a crash in between replays the output (same
deterministic id, dropped by receivers) rather than losing it.

What the service decides is published in the states and cases it stores (`alerts.states`,
`cases.changes`): grouped (`status`, `grouped_under`), closed, kept open after a resolution
(`after_resolution`), re-sent, escalated or re-assigned (`escalation`). Readers (the pager, the
console, the report) render these and never decide them again.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from rules.catalog import CASE_RESOLVED, catalog
from rules.deadlines import Deadlines
from schemas.alerts import CaseChange, Escalation, PoliceAlert, ReferralResponse, TrackedState, dump
from schemas.cases import report_case
from schemas.events import Event, MissingChildReport, parse_event
from schemas.referrals import Referral
from services.alerts import cases as case_rules
from services.alerts import lifecycle
from services.alerts.indexes import Indexes
from services.alerts.metrics import AlertsMetrics
from services.alerts.store import AlertStore, Sender
from topics.catalog import ESCALATIONS, POLICE_ALERTS, referral_topic_name

log = structlog.get_logger("alerts")

#: How long the timer waits for its own escalation to come back before deciding it again.
INFLIGHT_SECONDS = 5.0

M = TypeVar("M", bound=BaseModel)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class AlertsConfig:
    deadlines: Deadlines
    policy: case_rules.CasePolicy
    resends: int
    timer_interval: float


class Handlers:
    """One handler per input topic, the deadline timer and the gauges, over one store.

    `ready` says whether the store is complete and stable (restored, not rebalancing): the derived
    indexes are trusted, and deadlines decided, only then.
    """

    def __init__(self, store: AlertStore, sender: Sender, config: AlertsConfig, metrics: AlertsMetrics, *,
                 ready: Callable[[], bool] = lambda: True, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.store, self.sender, self.config, self.metrics = store, sender, config, metrics
        self.ready, self.clock = ready, clock
        self.indexes = Indexes()
        self._indexed = False
        self._inflight: dict[uuid.UUID, float] = {}

    # -- state and indexes -----------------------------------------------------------------------

    @property
    def waiting(self) -> dict[str, dt.datetime]:
        return self.indexes.waiting

    @property
    def open_by_case(self) -> dict[str, set[str]]:
        return self.indexes.open_by_case

    def state(self, key: str) -> TrackedState | None:
        return self.store.state(key)

    def case(self, case_id: uuid.UUID | str) -> CaseChange | None:
        return self.store.case(case_id)

    def store_state(self, state: TrackedState) -> None:
        self.store.put_state(state)
        self.indexes.index(state)

    def ensure_index(self) -> bool:
        """Rebuild the derived indexes from the store once it is ready; False while it is not."""
        if not self.ready():
            self._indexed = False
            return False
        if not self._indexed:
            self.indexes.rebuild(self.store.states())
            self._indexed = True
            log.info("deadlines_indexed", waiting=len(self.waiting), open_cases=len(self.open_by_case))
        return True

    def invalidate_index(self) -> None:
        """Forget the indexes: the next `ensure_index` rebuilds them from the store."""
        self._indexed = False

    # -- alerts and referrals --------------------------------------------------------------------

    async def on_alert(self, raw: bytes | None) -> None:
        alert = _parse(PoliceAlert, raw, "alert")
        if alert is None or alert.attempt > 1:
            return  # a re-send is the service's own output: the alert is already tracked
        key = str(alert.alert_id)
        if self.store.tracks(key):
            self.metrics.duplicates_dropped.labels("alerts").inc()
            return
        case = self.case(alert.case_id)
        under = case.alert_id if case is not None and case.status == "open" and case.alert_id != alert.alert_id \
            else None
        state = lifecycle.track_alert(alert, under=under)
        if case is not None and case.status == "closed" and case.alert_id == alert.alert_id:
            state = lifecycle.close(state, self.clock(), case.closed_by or alert.event_id).state
        self.metrics.alerts.labels(alert.jurisdiction, str(alert.exercise).lower()).inc()
        log.info("alert_tracked", alert_id=key, jurisdiction=alert.jurisdiction, status=state.status,
                 exercise=alert.exercise)
        await self._track(state)

    async def on_referral(self, raw: bytes | None) -> None:
        referral = _parse(Referral, raw, "referral")
        if referral is None:
            return
        if self.store.tracks(str(referral.referral_id)):
            self.metrics.duplicates_dropped.labels("alerts").inc()
            return
        state = lifecycle.track_referral(referral)
        # A clue already linked to an open case: its referrals are grouped under the case (not
        # once the case is resolved: the clue then stands on its own, see `lifecycle.release`),
        # and the case learns the agency, before the state is stored (a crash replays both).
        link = self.indexes.links(self.store.cases()).get(str(referral.event_id))
        if link is not None and (case := self.case(link[0])) is not None and case.status == "open":
            state = case_rules.group_referral(state, *link, self.clock()) or state
            referred = case_rules.refer_clue(case, referral.event_id, referral.agency, self.clock())
            if referred is not None:
                self.store.put_case(referred)
        await self._track(state)

    async def _track(self, state: TrackedState) -> None:
        """Store a new state, applying answers that arrived before it."""
        key = str(state.id)
        parked = self.store.parked(key)
        if parked:
            log.info("parked_applied", referral_id=key)
        for response in parked:
            outcome = lifecycle.apply_response(state, response)
            await self._effects(outcome)
            if outcome.applied:
                self.metrics.responses.labels(response.answer).inc()
            state = outcome.state
        self.store_state(self._on_arrival(state))
        if parked:
            self.store.unpark(key)

    def _on_arrival(self, state: TrackedState) -> TrackedState:
        """A referral or alert of a case the police already resolved is stored closed, or marked as
        raised after the resolution: topics are not ordered against each other, so it may arrive
        after the resolution that decides it."""
        case_id = lifecycle.case_of(state)
        case = self.case(case_id) if case_id is not None else None
        if case is None or case.status != "closed":
            return state
        if lifecycle.closes_with_case(state, case):
            log.info("closed_on_arrival", id=str(state.id), case_id=str(case.case_id))
            return lifecycle.close(state, self.clock(), case.closed_by or case.event_id).state
        return lifecycle.outlive(state, case, self.clock()) or state

    # -- answers ---------------------------------------------------------------------------------

    async def on_response(self, raw: bytes | None) -> None:
        response = _parse(ReferralResponse, raw, "response")
        if response is None:
            return
        primary = self.state(str(response.referral_id))
        if primary is None:
            self._park(str(response.referral_id), response)
            return
        if primary.has(str(response.response_id)):
            self.metrics.duplicates_dropped.labels("alerts-responses").inc()
            return
        outcome = await self._answer(primary, response)
        self.metrics.responses.labels(response.answer).inc()
        log.info("response", referral_id=str(response.referral_id), answer=response.answer,
                 status=outcome.state.status, refused=outcome.refused)
        # An alert and the command centre's lead referral stand for one duty: one answer for both.
        if primary.twin_id is not None:
            twin = self.state(str(primary.twin_id))
            if twin is None:
                self._park(str(primary.twin_id), response)
                log.info("response_parked", referral_id=str(primary.twin_id), answer=response.answer)
            else:
                twin_outcome = await self._answer(twin, response)
                log.info("response", referral_id=str(twin.id), answer=response.answer,
                         status=twin_outcome.state.status, refused=twin_outcome.refused)

    async def _answer(self, state: TrackedState, response: ReferralResponse) -> lifecycle.Outcome:
        outcome = lifecycle.apply_response(state, response)
        await self._effects(outcome)
        self.store_state(outcome.state)
        return outcome

    async def _effects(self, outcome: lifecycle.Outcome) -> None:
        for effect in outcome.effects:
            if isinstance(effect, lifecycle.Acked):
                self.metrics.ack_seconds.observe(effect.seconds)
            elif isinstance(effect, lifecycle.Reassign):
                if effect.referral is not None:
                    r = effect.referral
                    await self.sender.send(referral_topic_name(r.agency), r.key, dump(r))
                await self.sender.send(ESCALATIONS.name, effect.escalation.key, dump(effect.escalation))
                log.info("reassigned", referral_id=str(effect.escalation.referral_id),
                         to=effect.escalation.target_agency)

    def _park(self, key: str, response: ReferralResponse) -> None:
        parked = self.store.parked(key)
        if any(p.response_id == response.response_id for p in parked):
            return
        self.store.park(key, [*parked, response])

    # -- escalations -----------------------------------------------------------------------------

    async def on_escalation(self, raw: bytes | None) -> None:
        escalation = _parse(Escalation, raw, "escalation")
        if escalation is None:
            return
        state = self.state(str(escalation.referral_id))
        if state is None:
            return
        outcome = lifecycle.apply_escalation(state, escalation)
        if not outcome.applied:
            return
        self.store_state(outcome.state)
        if escalation.action == "resend":
            self.metrics.resends.inc()
        else:
            self.metrics.escalations.labels(str(escalation.level)).inc()
        log.info(escalation.action, referral_id=str(escalation.referral_id), level=escalation.level,
                 target=escalation.target_agency, jurisdiction=escalation.target_jurisdiction)

    # -- cases -----------------------------------------------------------------------------------

    async def on_event(self, raw: bytes | None) -> None:
        try:
            event = parse_event(raw or b"")
        except ValidationError:
            return  # the router dead-letters it
        now = self.clock()
        if isinstance(event, MissingChildReport):
            existing = self.case(report_case(event))
            if existing is None:
                self.store.put_case(case_rules.open_case(event))
                log.info("case_opened", case_id=str(report_case(event)), jurisdiction=event.jurisdiction)
            elif (grouped := case_rules.group_report(existing, event)) is not None:
                self.store.put_case(grouped)
        elif event.kind == CASE_RESOLVED:
            await self._close(event, now)
        else:
            self._link(event, now)

    async def _close(self, event: Event, now: dt.datetime) -> None:
        case = self.case(event.case_id) if event.case_id else None
        result = case_rules.close_case(case, event, now)
        if isinstance(result, case_rules.Refusal):
            if result.counted:
                self.metrics.case_close_refusals.inc()
                log.warning("case_close_refused", case_id=str(event.case_id), reason=result.reason)
            if result.case is not None:
                self.store.put_case(result.case)
            return
        # Once the child is found every page about the case stops: every alert and referral of the
        # case that is still open closes (the alert, the command centre's lead referral, the
        # cooperating referrals, accepted ones too; see `lifecycle.closes_with_case`). Before the
        # case is recorded closed, so that a crash in between replays the resolution; states that
        # arrive later are decided on arrival (`_on_arrival`).
        # A further report's alert grouped under the case although it was raised after the
        # resolution (it was read first) is un-grouped: it is paged and escalated on its own; any
        # other duty raised after the resolution stays open, marked so. A clue's referral grouped
        # under the case by a descriptor match is released, not closed: the match may be wrong.
        tally: Counter[str] = Counter()
        for key in self._open_of_case(str(result.case_id)):
            state = self.state(key)
            if state is None:
                continue
            if lifecycle.closes_with_case(state, result):
                decided, what = lifecycle.close(state, now, event.event_id).state, "closed"
            elif (alone := lifecycle.ungroup(state, result, now)) is not None:
                decided, what = alone, "ungrouped"
            elif (own := lifecycle.release(state, result, now)) is not None:
                decided, what = own, "released"
            elif (kept := lifecycle.outlive(state, result, now)) is not None:
                decided, what = kept, "kept_open"
            else:
                continue
            self.store_state(decided)
            tally[what] += 1
        self.store.put_case(result)
        log.info("case_closed", case_id=str(result.case_id), outcome=result.outcome, closed=tally["closed"],
                 ungrouped=tally["ungrouped"], released=tally["released"], kept_open=tally["kept_open"])

    def _open_of_case(self, case_key: str) -> list[str]:
        """The keys of the case's tracked states a resolution may change (from the index once built)."""
        if self.ensure_index():
            return sorted(self.open_by_case.get(case_key, ()))
        # Mid-rebalance the index is not trusted: the store itself, slower but complete.
        return sorted(str(s.id) for s in self.store.states()
                      if str(lifecycle.case_of(s)) == case_key and lifecycle.resolution_may_change(s))

    def _link(self, event: Event, now: dt.datetime) -> None:
        open_cases = (c for c in self.store.cases() if c.status == "open")
        found = case_rules.best_match(open_cases, event, self.config.policy)
        if found is None:
            return
        case, reason = found
        # The clue's referrals already tracked (the router may have been faster) are grouped under
        # the case here, before the link is recorded, so a crash in between replays it; later ones
        # on arrival (`on_referral`), which also adds their agencies to the clue.
        referrals = [s for key in self._open_of_event(str(event.event_id)) if (s := self.state(key)) is not None]
        for tracked in referrals:
            grouped = case_rules.group_referral(tracked, case.case_id, reason, now)
            if grouped is not None:
                self.store_state(grouped)
        linked = case_rules.link_clue(case, event, reason, now, tuple(sorted({s.agency for s in referrals})))
        self.indexes.links(self.store.cases())[str(event.event_id)] = (case.case_id, reason)
        if linked is not None:
            self.store.put_case(linked)
            log.info("clue_linked", case_id=str(case.case_id), event_id=str(event.event_id))

    def _open_of_event(self, event_key: str) -> list[str]:
        """The keys of an event's open referrals (from the index once built, else the store)."""
        if self.ensure_index():
            return sorted(self.indexes.open_by_event.get(event_key, ()))
        return sorted(str(s.id) for s in self.store.states()
                      if s.kind == "referral" and str(s.event_id) == event_key and s.status not in lifecycle.FINAL)

    # -- timers ----------------------------------------------------------------------------------

    async def scan_deadlines(self, now: dt.datetime | None = None) -> int:
        """Decide every due re-send/escalation; the escalations agent records them in the store."""
        if not self.ensure_index():
            return 0
        now = now or self.clock()
        mono = time.monotonic()
        self._inflight = {k: t for k, t in self._inflight.items() if mono - t < INFLIGHT_SECONDS}
        sent = 0
        for key in [k for k, at in self.waiting.items() if at <= now]:
            state = self.state(key)
            if state is None:
                continue
            escalation = lifecycle.next_escalation(state, now, self.config.deadlines, self.config.resends)
            if escalation is None or escalation.escalation_id in self._inflight:
                continue
            if escalation.action == "resend" and escalation.alert is not None:
                await self.sender.send(POLICE_ALERTS.name, escalation.alert.key, dump(escalation.alert))
            await self.sender.send(ESCALATIONS.name, escalation.key, dump(escalation))
            self._inflight[escalation.escalation_id] = mono
            sent += 1
        return sent

    def update_gauges(self, now: dt.datetime | None = None) -> None:
        if not self.ensure_index():
            return
        now = now or self.clock()
        overdue: Counter[str] = Counter()
        for key in list(self.waiting):
            state = self.state(key)
            if state is not None and lifecycle.is_overdue(state, now):
                overdue[state.jurisdiction] += 1
        open_cases: Counter[str] = Counter(c.jurisdiction for c in self.store.cases() if c.status == "open")
        for j in catalog().jurisdictions:
            self.metrics.overdue.labels(j).set(overdue[j])
            self.metrics.open_cases.labels(j).set(open_cases[j])


def _parse(model: type[M], raw: bytes | None, what: str) -> M | None:
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as exc:
        log.warning("undecodable", what=what, errors=len(exc.errors()))
        return None

