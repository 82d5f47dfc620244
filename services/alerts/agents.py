"""The alerts service's agents and timers: they decode, call the pure core, store, and send.

State lives in three faust tables whose changelog topics are declared in the topic catalog
(`alerts.states`, `cases.changes`, and `alerts.parked` for answers that arrive before their
referral): a worker killed and restarted restores them, and the timer's index of pending
deadlines is rebuilt from the restored states, so every pending re-send/escalation resumes.
Table changelogs are partitioned by key (`KeyedTable`) because the tables are updated from topics
of different partition counts (agency topics have 2, the others 4), where faust would otherwise
insist the changelog partition equal the source partition. The consequence, and a rule of
deployment: the alerts service runs as ONE active worker (a second one would split the tables
between workers, and clue matching must see every open case).

Ordering, for at-least-once without transactions: every output is sent and its delivery awaited
before the table change it implies is written, so a crash in between replays the output (same
deterministic id, dropped by receivers) rather than losing it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import faust
import structlog
from pydantic import ValidationError

from bus.faust_app import BusApp
from bus.settings import KafkaSettings
from bus.upstream.faust_tables import KeyPartitionedTable, overwrite_store
from rules.catalog import catalog
from rules.deadlines import Deadlines
from rules.engine import load_rulebook, route
from schemas.alerts import (
    CaseChange,
    Escalation,
    PoliceAlert,
    ReferralResponse,
    TrackedState,
    case_id_of,
    dump,
)
from schemas.events import Event, MissingChildReport, parse_event
from schemas.referrals import Referral
from services.alerts import cases as case_rules
from services.alerts import lifecycle
from services.alerts.metrics import AlertsMetrics
from services.alerts.readback import latest_by_key, read_topics
from topics.catalog import (
    ALERT_PARKED,
    ALERT_STATES,
    CASES,
    ESCALATIONS,
    EVENTS,
    POLICE_ALERTS,
    TopicSpec,
    all_topics,
    referral_topic_name,
)

log = structlog.get_logger("alerts")

#: How long the timer waits for its own escalation to come back before deciding it again.
INFLIGHT_SECONDS = 5.0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class AlertsConfig:
    deadlines: Deadlines
    policy: case_rules.CasePolicy
    resends: int
    timer_interval: float


def referral_topics() -> tuple[str, ...]:
    """Every agency's referral topic (the catalog's current agencies)."""
    return tuple(t.name for t in all_topics() if t.value == "Referral")


class Alerts:
    """The faust side of the service: tables, topics and the handlers the agents call."""

    def __init__(self, app: BusApp, config: AlertsConfig, metrics: AlertsMetrics) -> None:
        self.app, self.config, self.metrics = app, config, metrics
        self.tracked = self._table("tracked", ALERT_STATES)
        self.parked = self._table("parked", ALERT_PARKED)
        # The alerts waiting for an answer, with their next deadline: an index derived from the
        # tracked table (rebuilt from it after every recovery or rebalance), never stored apart,
        # so it cannot disagree with the table when a worker dies between two writes.
        self.waiting: dict[str, dt.datetime] = {}
        # Derived the same way: per case id, the keys of its tracked states that a resolution may
        # still change (`lifecycle.resolution_may_change`), so that it closes them all without a
        # scan of the table.
        self.open_by_case: dict[str, set[str]] = {}
        self._open_case_of: dict[str, str] = {}  # its reverse: a state's case may be set later (grouping)
        self._indexed = False
        # Set once the tables are complete (see `top_up`); handlers and timers wait for it.
        self.restored = asyncio.Event()
        self.cases = self._table("cases", CASES)
        self._topics: dict[str, Any] = {}
        self._inflight: dict[uuid.UUID, float] = {}

    def _table(self, name: str, spec: TopicSpec) -> Any:
        changelog = self.app.topic(spec.name, key_type=str, value_type=bytes, key_serializer="raw",
                                   value_serializer="raw", partitions=spec.partitions)
        app: Any = self.app
        return app.tables.add(KeyedTable(app, name=name, beacon=app.tables.beacon, key_type=str,
                                         value_type=bytes, partitions=spec.partitions,
                                         changelog_topic=changelog))

    def topic(self, name: str) -> Any:
        if name not in self._topics:
            self._topics[name] = self.app.topic(name, key_serializer="raw", value_serializer="raw")
        return self._topics[name]

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Send and wait for the broker's ack (acks=all) before any state change that depends on it.

        A send that fails (the broker did not answer within the request timeout) fails the
        worker's delivery guard for good: faust would restart the handler and ack its message, so
        the guard refuses every later commit and the worker exits; restarted, it reads the
        message again.
        """
        try:
            fut = await self.topic(topic).send(key=key, value=value)
            await fut
        except Exception as exc:
            self.app.delivery_guard.trip(exc)
            raise

    # -- state ---------------------------------------------------------------------------------

    def state(self, key: str) -> TrackedState | None:
        raw = self.tracked.get(key)
        return None if raw is None else TrackedState.model_validate_json(raw)

    def store(self, state: TrackedState) -> None:
        self.tracked[str(state.id)] = dump(state)
        self._index(state)

    def _index(self, state: TrackedState) -> None:
        key = str(state.id)
        if state.kind == "alert" and state.next_deadline is not None and state.status in lifecycle.WAITING:
            self.waiting[key] = state.next_deadline
        else:
            self.waiting.pop(key, None)
        before = self._open_case_of.pop(key, None)
        if before is not None:
            keys = self.open_by_case.get(before, set())
            keys.discard(key)
            if not keys:
                self.open_by_case.pop(before, None)
        case_id = lifecycle.case_of(state)
        if case_id is not None and lifecycle.resolution_may_change(state):
            self.open_by_case.setdefault(str(case_id), set()).add(key)
            self._open_case_of[key] = str(case_id)

    async def top_up(self, kafka: KafkaSettings) -> None:
        """Complete faust's table recovery from the changelog topics, then open the gates.

        faust restores a table up to its changelog's end offsets, but the local Tansu broker
        reports a partition's end offset as the start of its last batch (see
        tests/integration/test_regression_end_offsets.py): the records after it — the last state
        changes before a crash — would be missing after a restart. Reading each changelog to its
        real end and applying the latest value per key to the store (the store, not the table:
        nothing is written back) makes the tables whole; no handler runs before that.
        """
        app: Any = self.app
        await app.tables.recovery.completed.wait()
        for table, spec in ((self.tracked, ALERT_STATES), (self.parked, ALERT_PARKED), (self.cases, CASES)):
            overwrite_store(table, latest_by_key(await read_topics(kafka, [spec.name], limit=300.0)))
        self.restored.set()
        log.info("tables_restored", tracked=len(self.tracked), cases=len(self.cases))

    def ensure_index(self) -> bool:
        """Rebuild the derived indexes (waiting, open_by_case) from the restored table once the
        tables are ready."""
        if not self.ready() or not self.restored.is_set():
            self._indexed = False
            return False
        if not self._indexed:
            self.waiting.clear()
            self.open_by_case.clear()
            self._open_case_of.clear()
            for raw in list(self.tracked.values()):
                self._index(TrackedState.model_validate_json(raw))
            self._indexed = True
            log.info("deadlines_indexed", waiting=len(self.waiting), open_cases=len(self.open_by_case))
        return True

    def case(self, case_id: uuid.UUID | str) -> CaseChange | None:
        raw = self.cases.get(str(case_id))
        return None if raw is None else CaseChange.model_validate_json(raw)

    async def put_case(self, case: CaseChange) -> None:
        # The cases table's changelog IS the public cases.changes topic: this write is the
        # forward to the case's owner.
        self.cases[str(case.case_id)] = dump(case)

    # -- handlers ------------------------------------------------------------------------------

    async def on_alert(self, raw: bytes | None) -> None:
        alert = _parse(PoliceAlert, raw, "alert")
        if alert is None or alert.attempt > 1:
            return  # a re-send is the service's own output: the alert is already tracked
        key = str(alert.alert_id)
        if key in self.tracked:
            self.metrics.duplicates_dropped.labels("alerts").inc()
            return
        case = self.case(alert.case_id)
        grouped = case is not None and case.status == "open" and case.alert_id != alert.alert_id
        state = lifecycle.track_alert(alert, grouped=grouped)
        if case is not None and case.status == "closed" and case.alert_id == alert.alert_id:
            state = lifecycle.close(state, _utcnow(), case.closed_by or alert.event_id).state
        self.metrics.alerts.labels(alert.jurisdiction, str(alert.exercise).lower()).inc()
        log.info("alert_tracked", alert_id=key, jurisdiction=alert.jurisdiction, status=state.status,
                 exercise=alert.exercise)
        await self._track(state)

    async def on_referral(self, raw: bytes | None) -> None:
        referral = _parse(Referral, raw, "referral")
        if referral is None:
            return
        if str(referral.referral_id) in self.tracked:
            self.metrics.duplicates_dropped.labels("alerts").inc()
            return
        state = lifecycle.track_referral(referral)
        # A clue already linked to an open case: its referrals are grouped under the case (not
        # once the case is resolved: the clue then stands on its own, see `lifecycle.release`).
        link = self._clue_links().get(str(referral.event_id))
        if link is not None and (case := self.case(link[0])) is not None and case.status == "open":
            state = case_rules.group_referral(state, *link, _utcnow()) or state
        await self._track(state)

    async def _track(self, state: TrackedState) -> None:
        """Store a new state, applying answers that arrived before it."""
        key = str(state.id)
        parked = self.parked.get(key)
        if parked is not None:
            log.info("parked_applied", referral_id=key)
            for item in json.loads(parked):
                response = ReferralResponse.model_validate(item)
                outcome = lifecycle.apply_response(state, response)
                await self._effects(outcome)
                if outcome.applied:
                    self.metrics.responses.labels(response.answer).inc()
                state = outcome.state
        self.store(self._closed_on_arrival(state))
        if parked is not None:
            del self.parked[key]

    def _closed_on_arrival(self, state: TrackedState) -> TrackedState:
        """A referral or alert of a case the police already resolved is stored closed: topics are
        not ordered against each other, so it may arrive after the resolution that closes it."""
        case_id = lifecycle.case_of(state)
        case = self.case(case_id) if case_id is not None else None
        if case is None or case.status != "closed" or not lifecycle.closes_with_case(state, case):
            return state
        log.info("closed_on_arrival", id=str(state.id), case_id=str(case.case_id))
        return lifecycle.close(state, _utcnow(), case.closed_by or case.event_id).state

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
        self.store(outcome.state)
        return outcome

    async def _effects(self, outcome: lifecycle.Outcome) -> None:
        for effect in outcome.effects:
            if isinstance(effect, lifecycle.Acked):
                self.metrics.ack_seconds.observe(effect.seconds)
            elif isinstance(effect, lifecycle.Reassign):
                if effect.referral is not None:
                    r = effect.referral
                    await self.send(referral_topic_name(r.agency), r.key, dump(r))
                await self.send(ESCALATIONS.name, effect.escalation.key, dump(effect.escalation))
                log.info("reassigned", referral_id=str(effect.escalation.referral_id),
                         to=effect.escalation.target_agency)

    def _park(self, key: str, response: ReferralResponse) -> None:
        items = json.loads(self.parked.get(key) or b"[]")
        if any(i["response_id"] == str(response.response_id) for i in items):
            return
        items.append(response.model_dump(mode="json"))
        self.parked[key] = json.dumps(items).encode()

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
        self.store(outcome.state)
        if escalation.action == "resend":
            self.metrics.resends.inc()
        else:
            self.metrics.escalations.labels(str(escalation.level)).inc()
        log.info(escalation.action, referral_id=str(escalation.referral_id), level=escalation.level,
                 target=escalation.target_agency, jurisdiction=escalation.target_jurisdiction)

    async def on_event(self, raw: bytes | None) -> None:
        try:
            event = parse_event(raw or b"")
        except ValidationError:
            return  # the router dead-letters it
        now = _utcnow()
        if isinstance(event, MissingChildReport):
            existing = self.case(case_id_of(event))
            if existing is None:
                await self.put_case(case_rules.open_case(event))
                log.info("case_opened", case_id=str(case_id_of(event)), jurisdiction=event.jurisdiction)
            elif (grouped := case_rules.group_report(existing, event)) is not None:
                await self.put_case(grouped)
        elif event.kind == "case_resolved":
            await self._close(event, now)
        else:
            await self._link(event, now)

    async def _close(self, event: Event, now: dt.datetime) -> None:
        case = self.case(event.case_id) if event.case_id else None
        result = case_rules.close_case(case, event, now)
        if isinstance(result, case_rules.Refusal):
            if result.counted:
                self.metrics.case_close_refusals.inc()
                log.warning("case_close_refused", case_id=str(event.case_id), reason=result.reason)
            if result.case is not None:
                await self.put_case(result.case)
            return
        # Once the child is found every page about the case stops: every alert and referral of the
        # case that is still open closes (the alert, the command centre's lead referral, the
        # cooperating referrals, accepted ones too; see `lifecycle.closes_with_case`). Before the
        # case is recorded closed, so that a crash in between replays the resolution; states that
        # arrive later close on arrival (`_closed_on_arrival`).
        # A further report's alert grouped under the case although it was raised after the
        # resolution (it was read first) is un-grouped: it is paged and escalated on its own. A
        # clue's referral grouped under the case by a descriptor match is released, not closed:
        # the match may have been wrong.
        closed = ungrouped = released = 0
        for key in self._open_of_case(str(result.case_id)):
            state = self.state(key)
            if state is None:
                continue
            if lifecycle.closes_with_case(state, result):
                self.store(lifecycle.close(state, now, event.event_id).state)
                closed += 1
            elif (alone := lifecycle.ungroup(state, result, now)) is not None:
                self.store(alone)
                ungrouped += 1
            elif (own := lifecycle.release(state, result, now)) is not None:
                self.store(own)
                released += 1
        await self.put_case(result)
        log.info("case_closed", case_id=str(result.case_id), outcome=result.outcome, closed=closed,
                 ungrouped=ungrouped, released=released)

    def _open_of_case(self, case_key: str) -> list[str]:
        """The keys of the case's tracked states a resolution may change (from the index once built)."""
        if self.ensure_index():
            return sorted(self.open_by_case.get(case_key, ()))
        # Mid-rebalance the index is not trusted: the table itself, slower but complete.
        found = []
        for key, raw in list(self.tracked.items()):
            state = TrackedState.model_validate_json(raw)
            if str(lifecycle.case_of(state)) == case_key and lifecycle.resolution_may_change(state):
                found.append(key)
        return sorted(found)

    async def _link(self, event: Event, now: dt.datetime) -> None:
        open_cases = (c for c in (CaseChange.model_validate_json(v) for v in self.cases.values())
                      if c.status == "open")
        found = case_rules.best_match(open_cases, event, self.config.policy)
        if found is None:
            return
        case, reason = found
        # The clue's referrals are grouped under the case: those already tracked (the router may
        # have been faster) here, before the link is recorded, so a crash in between replays it;
        # later ones on arrival (`on_referral`). Their ids are the router's: same rule book, same ids.
        referrals = route(event, await asyncio.to_thread(load_rulebook))
        for referral in referrals:
            tracked = self.state(str(referral.referral_id))
            grouped = case_rules.group_referral(tracked, case.case_id, reason, now) if tracked else None
            if grouped is not None:
                self.store(grouped)
        linked = case_rules.link_clue(case, event, reason, now, tuple(sorted({r.agency for r in referrals})))
        self._clue_links()[str(event.event_id)] = (case.case_id, reason)
        if linked is not None:
            await self.put_case(linked)
            log.info("clue_linked", case_id=str(case.case_id), event_id=str(event.event_id))

    _clues: dict[str, tuple[uuid.UUID, str]] | None = None

    def _clue_links(self) -> dict[str, tuple[uuid.UUID, str]]:
        """Clue event id -> (case id, match reason) of every linked clue: built from the restored
        cases table on first use (handlers run only after the restore), kept up to date by `_link`."""
        if self._clues is None:
            clues: dict[str, tuple[uuid.UUID, str]] = {}
            for raw in list(self.cases.values()):
                if b'"clues":[]' in raw:
                    continue  # most cases have none: skip the parse
                case = CaseChange.model_validate_json(raw)
                for clue in case.clues:
                    clues[str(clue.event_id)] = (case.case_id, clue.reason)
            self._clues = clues
        return self._clues

    # -- timers --------------------------------------------------------------------------------

    def ready(self) -> bool:
        """Tables fully restored: deciding on a half-recovered state could escalate an answered alert."""
        app: Any = self.app
        return bool(app.tables.recovery.completed.is_set() and not app.rebalancing
                    and not getattr(app, "in_recovery", False))

    async def scan_deadlines(self, now: dt.datetime | None = None) -> int:
        """Decide every due re-send/escalation; the escalations agent records them in the table."""
        if not self.ensure_index():
            return 0
        now = now or _utcnow()
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
                await self.send(POLICE_ALERTS.name, escalation.alert.key, dump(escalation.alert))
            await self.send(ESCALATIONS.name, escalation.key, dump(escalation))
            self._inflight[escalation.escalation_id] = mono
            sent += 1
        return sent

    def update_gauges(self, now: dt.datetime | None = None) -> None:
        if not self.ensure_index():
            return
        now = now or _utcnow()
        overdue: Counter[str] = Counter()
        for key in list(self.waiting):
            state = self.state(key)
            if state is not None and lifecycle.is_overdue(state, now):
                overdue[state.jurisdiction] += 1
        open_cases: Counter[str] = Counter(
            c.jurisdiction for c in (CaseChange.model_validate_json(v) for v in self.cases.values())
            if c.status == "open")
        for j in catalog().jurisdictions:
            self.metrics.overdue.labels(j).set(overdue[j])
            self.metrics.open_cases.labels(j).set(open_cases[j])


class KeyedTable(KeyPartitionedTable):
    """A table whose changelog partition follows its key (`KeyPartitionedTable`): its tables are
    written while processing topics of different partition counts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Keys on the wire as plain text, like every other topic keyed by an id (faust would
        # JSON-encode a str key, quotes included).
        self.key_serializer = "raw"

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        # faust buffers a table write and sends it in the background, only logging a failed one,
        # while the message that caused it gets committed. The transport's producer watches the
        # write once faust hands it over, but faust's flush before a commit can return while the
        # last write it took from its buffer is still being handed over (blocked on a stalled
        # broker): watched from the moment it is buffered, the write holds every commit until
        # the broker acknowledges it, and fails the guard for good if it does not.
        fut = super().send_changelog(*args, **kwargs)
        app: Any = self.app  # a BusApp (faust types it as its AppT)
        app.delivery_guard.track(fut)
        return fut


def _parse(model: Any, raw: bytes | None, what: str) -> Any:
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as exc:
        log.warning("undecodable", what=what, errors=len(exc.errors()))
        return None


def wire(app: BusApp, config: AlertsConfig, metrics: AlertsMetrics, kafka: KafkaSettings) -> Alerts:
    """Register the tables, agents and timers of the alerts service on `app`."""
    alerts = Alerts(app, config, metrics)

    async def restore() -> None:
        await alerts.top_up(kafka)

    app.task(restore)

    def agent(topics: tuple[str, ...], name: str, handler: Any) -> None:
        source = app.topic(*topics, key_serializer="raw", value_serializer="raw")

        async def run(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            # One message at a time: faust commits an offset only after the loop moved past it
            # and the producer flushed, so a crash replays the message (handlers are idempotent).
            async for value in stream:
                await alerts.restored.wait()
                await handler(value)
                yield None

        app.agent(source, name=name)(run)

    agent((POLICE_ALERTS.name,), "track-alerts", alerts.on_alert)
    agent(referral_topics(), "track-referrals", alerts.on_referral)
    agent(kafka.answer_topics, "apply-responses", alerts.on_response)
    agent((ESCALATIONS.name,), "apply-escalations", alerts.on_escalation)
    agent((EVENTS.name,), "follow-cases", alerts.on_event)

    async def deadlines() -> None:
        await alerts.scan_deadlines()

    async def gauges() -> None:
        alerts.update_gauges()

    app.timer(config.timer_interval, name="scan-deadlines")(deadlines)
    app.timer(2.0, name="alert-gauges")(gauges)
    return alerts
