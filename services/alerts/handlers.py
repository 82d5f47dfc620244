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

import asyncio
import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from bus.boundary import ANSWER, ESCALATION, EVENT, POLICE_ALERT, REFERRAL, Contract, Position, Refusal, fault
from bus.refusal_notices import answer_notice
from rules.catalog import CASE_RESOLVED, catalog
from rules.deadlines import Deadlines
from schemas.alerts import CaseChange, ParkedAnswer, ReferralResponse, TrackedState, dump
from schemas.answers import RefusalReason
from schemas.cases import report_case
from schemas.errors import FieldError
from schemas.events import Event, MissingChildReport
from services.alerts import answers as answer_rules
from services.alerts import cases as case_rules
from services.alerts import lifecycle
from services.alerts.indexes import Indexes
from services.alerts.metrics import AlertsMetrics
from services.alerts.store import AlertStore, Sender
from topics.catalog import (
    ANSWERS,
    ANSWERS_REFUSED,
    ESCALATIONS,
    POLICE_ALERTS,
    current_agencies,
    referral_topic_name,
    refusals_topic_name,
)

log = structlog.get_logger("alerts")

#: How long the timer waits for its own escalation to come back before deciding it again.
INFLIGHT_SECONDS = 5.0

M = TypeVar("M")


class DeliveryFailed(Exception):
    """The broker did not take an output: not the message's fault, and not one to set aside (the
    worker's delivery guard stops the worker, which reads the message again after a restart)."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class AlertsConfig:
    deadlines: Deadlines
    policy: case_rules.CasePolicy
    resends: int
    timer_interval: float
    #: How long an answer waits for an alert or referral the service does not know yet.
    park_seconds: float = answer_rules.PARK_SECONDS


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
        #: When the oldest answer parked under each key was parked (its window ends first).
        self._parked_since: dict[str, dt.datetime] = {}
        #: The agencies with a refusals topic (`topics create` makes one per current agency).
        self._current_agencies = frozenset(current_agencies())

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
            self._parked_since = {}
            for key in self.store.parked_keys():
                answers = self.store.parked(key)
                if answers:
                    self._parked_since[key] = min(a.parked_at for a in answers)
            self._indexed = True
            log.info("deadlines_indexed", waiting=len(self.waiting), open_cases=len(self.open_by_case))
        return True

    def invalidate_index(self) -> None:
        """Forget the indexes: the next `ensure_index` rebuilds them from the store."""
        self._indexed = False

    # -- decoding, sending and the last resort ---------------------------------------------------

    def _decode(self, contract: Contract[M], raw: bytes | None, what: str) -> M | None:
        """What a record holds, through the trust boundary; None for a record that is not one of
        its kind (counted and logged by its reason, never its contents)."""
        value = contract.decode(raw)
        if isinstance(value, Refusal):
            self.metrics.records_refused.labels(what, value.reason).inc()
            log.warning("record_refused", input=what, reason=value.reason)
            return None
        return value

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            await self.sender.send(topic, key, value)
        except Exception as exc:
            raise DeliveryFailed(type(exc).__name__) from exc

    async def guard(self, step: str, handler: Callable[..., Awaitable[Any] | Any], *args: Any, **kwargs: Any) -> None:
        """Run one handler or timer step. An unexpected exception in it (a bug) sets that one
        message aside, logged by its type and code location only (`bus.boundary.fault`) and
        counted in `referral_bus_internal_errors_total{step}`, and the worker goes on, instead of
        stopping on, and after a restart again on, the same message. A failed send is not set
        aside: the broker did not take an output, and the worker's delivery guard stops it."""
        try:
            result = handler(*args, **kwargs)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        except (asyncio.CancelledError, DeliveryFailed):
            raise
        except Exception as exc:
            fault(step, exc)
            self.metrics.internal_errors.labels(step).inc()

    # -- alerts and referrals --------------------------------------------------------------------

    async def on_alert(self, raw: bytes | None) -> None:
        alert = self._decode(POLICE_ALERT, raw, "alert")
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
        referral = self._decode(REFERRAL, raw, "referral")
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
        """Store a new state, applying answers that arrived before it (each authorised as if it
        came now, dated when the bus received it)."""
        key = str(state.id)
        parked = self.store.parked(key)
        if parked:
            log.info("parked_applied", referral_id=key, answers=len(parked))
        for waiting in parked:
            state = await self._apply_parked(state, waiting)
        self.store_state(self._on_arrival(state))
        if parked:
            self.store.unpark(key)
            self._parked_since.pop(key, None)

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

    async def on_response(self, raw: bytes | None, received_at: float | dt.datetime | None = None,
                          position: Position | None = None) -> str:
        """One record of the answers topic: applied, parked until its alert or referral arrives,
        a copy dropped, or refused on the refused-answers topic with its reason. Returns which
        (`applied`, `parked`, `duplicate`, or the reason). `received_at` is the record's time
        (`answers.bus_time`): the answer's time wherever it counts."""
        now = self.clock()
        at = answer_rules.bus_time(received_at, now)
        try:
            return await self._on_response(raw, at, now, position)
        except (asyncio.CancelledError, DeliveryFailed):
            raise
        except Exception as exc:
            fault("answer", exc, **_where(position))
            self.metrics.internal_errors.labels("answer").inc()
            await self._refuse(answer_rules.sniff(raw), "internal_error", at, now, position=position)
            return "internal_error"

    async def _on_response(self, raw: bytes | None, at: dt.datetime, now: dt.datetime,
                           position: Position | None) -> str:
        decoded = ANSWER.decode(raw)
        if isinstance(decoded, Refusal):
            return await self._refuse(answer_rules.sniff(raw), decoded.reason, at, now,  # type: ignore[arg-type]
                                      fields=decoded.fields, position=position)
        response = decoded
        if response.agency is None:
            # Nobody can be entitled: refused now, not parked for the alert or referral to arrive.
            return await self._refuse(answer_rules.AnswerIds.of(response), "no_agency", at, now, position=position)
        primary = self.state(str(response.referral_id))
        if primary is None:
            return await self._park(str(response.referral_id), response, at, now, position)
        return await self._answer_duty(primary, response, at, now, position)

    async def _answer_duty(self, primary: TrackedState, response: ReferralResponse, at: dt.datetime,
                           now: dt.datetime, position: Position | None) -> str:
        """An answer to a tracked alert or referral: applied to it and to its twin (an alert and
        the command centre's lead referral stand for one duty), if an agency entitled to either gave
        it and it changes something; else refused."""
        ref = str(response.response_id)
        if primary.has(ref):
            self.metrics.duplicates_dropped.labels("alerts-responses").inc()
            return "duplicate"
        twin = self.state(str(primary.twin_id)) if primary.twin_id is not None else None
        reason = lifecycle.authorise(primary, twin, response)
        if reason in ("already_final", "no_effect") and primary.twin_id is not None and twin is None:
            # The other of the pair is not tracked yet: it decides when it arrives.
            return await self._park(str(primary.twin_id), response, at, now, position, for_twin=True)
        if reason is not None:
            return await self._refuse(answer_rules.AnswerIds.of(response), reason, at, now,  # type: ignore[arg-type]
                                      position=position, tell=response.agency)
        status = await self._apply(primary, twin, response, at)
        if primary.twin_id is not None and twin is None:
            self._put_parked(str(primary.twin_id), ParkedAnswer(response=response, received_at=at, parked_at=now,
                                                                for_twin=True))
            log.info("response_parked", referral_id=str(primary.twin_id), answer=response.answer)
        log.info("response", referral_id=str(primary.id), answer=response.answer, status=status)
        return "applied"

    async def _apply(self, primary: TrackedState, twin: TrackedState | None, response: ReferralResponse,
                     at: dt.datetime) -> str:
        """Apply an authorised answer to each of the pair that is not final; the primary's status after."""
        status = primary.status
        for target in (primary, twin):
            if target is None or target.status in lifecycle.FINAL or target.has(str(response.response_id)):
                continue
            outcome = await self._answer(target, response, at)
            if target is primary:
                status = outcome.state.status
        self.metrics.responses.labels(response.answer).inc()
        return status

    async def _apply_parked(self, state: TrackedState, waiting: ParkedAnswer) -> TrackedState:
        """A parked answer, now that its alert or referral (`state`, not stored yet) is here."""
        response = waiting.response
        if state.has(str(response.response_id)):
            return state
        twin = self.state(str(state.twin_id)) if state.twin_id is not None else None
        reason = lifecycle.authorise(state, twin, response)
        if reason is not None:
            if waiting.for_twin:
                # Applied to the other of the pair already; this one needs nothing more.
                log.info("parked_not_needed", referral_id=str(state.id), reason=reason)
            else:
                await self._refuse(answer_rules.AnswerIds.of(response), reason,  # type: ignore[arg-type]
                                   waiting.received_at, self.clock())
            return state
        outcome = lifecycle.apply_response(state, response, waiting.received_at)
        await self._effects(outcome)
        if not waiting.for_twin:
            if twin is not None and twin.status not in lifecycle.FINAL and not twin.has(str(response.response_id)):
                await self._answer(twin, response, waiting.received_at)
            self.metrics.responses.labels(response.answer).inc()
        return outcome.state

    async def _answer(self, state: TrackedState, response: ReferralResponse, at: dt.datetime) -> lifecycle.Outcome:
        outcome = lifecycle.apply_response(state, response, at)
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
                    await self._send(referral_topic_name(r.agency), r.key, dump(r))
                await self._send(ESCALATIONS.name, effect.escalation.key, dump(effect.escalation))
                log.info("reassigned", referral_id=str(effect.escalation.referral_id),
                         to=effect.escalation.target_agency)

    async def _park(self, key: str, response: ReferralResponse, at: dt.datetime, now: dt.datetime,
                    position: Position | None, *, for_twin: bool = False) -> str:
        """Keep an answer until the alert or referral `key` arrives, within bounds; beyond them,
        or once its window has passed (`expire_parked`), it is refused: `unknown_id`."""
        parked = self.store.parked(key)
        if any(p.response.response_id == response.response_id for p in parked):
            self.metrics.duplicates_dropped.labels("alerts-responses").inc()
            return "duplicate"
        if len(parked) >= answer_rules.MAX_PARKED_PER_ID or (
                not parked and len(self._parked_since) >= answer_rules.MAX_PARKED_IDS):
            if for_twin:
                log.warning("parked_full", referral_id=key)
                return "applied"
            return await self._refuse(answer_rules.AnswerIds.of(response), "unknown_id", at, now, position=position,
                                      tell=response.agency)
        self._put_parked(key, ParkedAnswer(response=response, received_at=at, parked_at=now, for_twin=for_twin),
                         parked)
        if not for_twin:
            log.info("response_parked", referral_id=key, answer=response.answer)
        return "parked"

    def _put_parked(self, key: str, answer: ParkedAnswer, parked: list[ParkedAnswer] | None = None) -> None:
        parked = self.store.parked(key) if parked is None else parked
        if any(p.response.response_id == answer.response.response_id for p in parked):
            return
        self.store.park(key, [*parked, answer])
        self._parked_since.setdefault(key, answer.parked_at)

    async def expire_parked(self, now: dt.datetime | None = None) -> int:
        """Refuse every parked answer whose window has passed (`unknown_id`): its alert or
        referral never came. Returns how many were refused."""
        if not self.ensure_index():
            return 0
        now = now or self.clock()
        window = dt.timedelta(seconds=self.config.park_seconds)
        refused = 0
        for key in [k for k, since in self._parked_since.items() if now - since >= window]:
            parked = self.store.parked(key)
            keep = [p for p in parked if not answer_rules.expired(p, now, self.config.park_seconds)]
            for gone in parked:
                if gone in keep:
                    continue
                if gone.for_twin:
                    log.info("parked_twin_expired", referral_id=key)
                    continue
                await self._refuse(answer_rules.AnswerIds.of(gone.response), "unknown_id", gone.received_at, now)
                refused += 1
            if keep:
                self.store.park(key, keep)
                self._parked_since[key] = min(p.parked_at for p in keep)
            else:
                self.store.unpark(key)
                self._parked_since.pop(key, None)
        return refused

    async def _refuse(self, ids: answer_rules.AnswerIds, reason: RefusalReason, at: dt.datetime,
                      now: dt.datetime, *, fields: tuple[FieldError, ...] = (),
                      position: Position | None = None, tell: str | None = None) -> str:
        """An answer not applied: one record on the refused-answers topic (ids and codes only),
        counted by reason, logged with its ids. `tell`: the agency of an answer that was one, read
        where it was just read on the answers topic, which only the bus's services write (the
        intake and the console, each for the agency it authenticated): it reads why on its own
        refusals topic too. An answer refused later (parked, then refused) has no position to
        name and is not told."""
        record = answer_rules.refused(ids, reason, at, now, fields=fields, position=position)
        await self._send(ANSWERS_REFUSED.name, record.key, dump(record))
        if tell in self._current_agencies and position is not None and position.topic == ANSWERS.name:
            notice = answer_notice(ids, reason, fields, position, at, now)
            await self._send(refusals_topic_name(tell), notice.key, dump(notice))
        self.metrics.answers_refused.labels(reason).inc()
        log.info("answer_refused", reason=reason, referral_id=ids.referral_id, response_id=ids.response_id,
                 agency=ids.agency)
        return reason

    # -- escalations -----------------------------------------------------------------------------

    async def on_escalation(self, raw: bytes | None) -> None:
        escalation = self._decode(ESCALATION, raw, "escalation")
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
        event = self._decode(EVENT, raw, "event")
        if event is None:
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
                await self._send(POLICE_ALERTS.name, escalation.alert.key, dump(escalation.alert))
            await self._send(ESCALATIONS.name, escalation.key, dump(escalation))
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


def _where(position: Position | None) -> dict[str, object]:
    return {} if position is None else {"topic": position.topic, "partition": position.partition,
                                        "offset": position.offset}
