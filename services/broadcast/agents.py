"""The broadcast worker: Kafka edges around the pure decisions in `handling`.

aiokafka rather than faust: the worker also runs a clock (radius updates are due by time, not by
an event) and serves the feed from the same state, and it needs the state fully restored before
its first decision; a compacted topic read to its end at start gives exactly that, without a
faust changelog topic outside the catalog or faust's slow group start.

Durability, in order, for every decision:
1. the case's new state, with its new CAP messages in `pending` (the outbox), is written to the
   compacted `broadcast.state` topic (acks=all);
2. the messages are published on their channels' topics;
3. the state is written again with `pending` cleared;
4. the input offset is committed (input-driven decisions only).
A crash after 1 re-publishes the same bytes on restart (receivers drop copies by CAP
identifier); a crash before 1 replays the input event, and decisions are idempotent on state.
So a restart neither broadcasts a case twice nor forgets to cancel it.

Run one instance: the clock-driven Updates are not partitioned between instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from pydantic import TypeAdapter

from bus.boundary import EVENT, Contract, Limits, Position, Refusal, dead_letter, fault, sniff_ids
from bus.kafka import clients
from bus.kafka.reader import read_all
from bus.settings import KafkaSettings
from schemas.broadcast import CAP_CONTENT_TYPE, BroadcastRefusal, CapMessage, CaseBroadcast
from schemas.cases import event_case
from schemas.referrals import DeadLetter
from services.broadcast.handling import Outcome, next_due, on_event, on_tick
from services.broadcast.metrics import BroadcastMetrics
from services.broadcast.settings import BroadcastConfig, BroadcastSettings
from topics.catalog import BROADCAST_REFUSALS, BROADCAST_STATE, DEAD_LETTERS, EVENTS, broadcast_topic

log = structlog.get_logger("broadcast")

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class BroadcastWorker:
    """Holds every case's broadcast state in memory, backed by the compacted state topic."""

    def __init__(self, kafka: KafkaSettings, settings: BroadcastSettings, config: BroadcastConfig,
                 metrics: BroadcastMetrics, clock: Clock = utc_now) -> None:
        self.kafka, self.settings, self.config, self.metrics, self.clock = kafka, settings, config, metrics, clock
        self.states: dict[uuid.UUID, CaseBroadcast] = {}
        self.ready = asyncio.Event()
        # Input decisions and clock decisions touch the same case records: one at a time.
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Restore, flush any outbox, then consume events and keep the clock until `stop` is set."""
        producer = clients.producer(self.kafka)
        await producer.start()
        try:
            await self._restore()
            await self._flush_outboxes(producer)
            consumer = clients.consumer(self.kafka, EVENTS.name, group_id=self.settings.group_id)
            await consumer.start()
            try:
                self.ready.set()
                log.info("broadcast_ready", cases=len(self.states), active=self._count_active())
                tasks = [asyncio.create_task(self._consume(consumer, producer), name="broadcast-consume"),
                         asyncio.create_task(self._ticks(producer), name="broadcast-clock"),
                         asyncio.create_task(stop.wait(), name="broadcast-stop")]
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
            finally:
                await consumer.stop()
        finally:
            await producer.stop()

    async def _restore(self) -> None:
        """Read the compacted state topic to its end: the latest record of each case wins."""
        for rec in await read_all(self.kafka, [BROADCAST_STATE.name]):
            self._restore_record(rec)
        self.metrics.active.set(self._count_active())

    def _restore_record(self, rec: ConsumerRecord[bytes, bytes]) -> None:
        """One record of the state topic: the case's latest state, or its tombstone. A record that
        is not a state (only this service writes the topic: a bug, or someone else who can) is
        skipped and counted, so the case keeps its last good state and the service still starts."""
        try:
            case_id = uuid.UUID(rec.key.decode("ascii")) if rec.key is not None else None
        except (UnicodeDecodeError, ValueError):
            case_id = None
        state = STATE.decode(rec.value) if rec.value is not None else None
        if case_id is None or isinstance(state, Refusal) or (state is not None and state.case_id != case_id):
            self.metrics.internal_errors.labels("broadcast_restore").inc()
            log.error("broadcast_state_skipped", partition=rec.partition, offset=rec.offset,
                      reason=state.reason if isinstance(state, Refusal) else "bad_key")
            return
        if state is None:
            self.states.pop(case_id, None)
        else:
            self.states[case_id] = state

    async def _flush_outboxes(self, producer: AIOKafkaProducer) -> None:
        for case in list(self.states.values()):
            if case.pending:
                log.warning("broadcast_outbox_resend", case_id=str(case.case_id), messages=len(case.pending))
                by_id = {m.identifier: m for m in case.messages}
                await self._publish(producer, case.case_id, [by_id[i] for i in case.pending if i in by_id])
                await self._write_state(producer, case.model_copy(update={"pending": ()}))

    async def _consume(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for rec in records:
                    await self._handle_record(rec, producer)
            if batch:
                # Only after every decision of the batch is on the state topic and its channels.
                await consumer.commit()

    async def _handle_record(self, rec: ConsumerRecord[bytes, bytes], producer: AIOKafkaProducer) -> None:
        async with self._lock:
            step = self.decide(rec.value, Position(rec.topic, rec.partition, rec.offset))
            self.metrics.inputs.labels(step.reason).inc()
            if step.outcome is not None:
                await self._apply(producer, step.outcome)
            if step.dead_letter is not None:
                self.metrics.internal_errors.labels("broadcast_event").inc()
                await producer.send_and_wait(DEAD_LETTERS.name, key=_dead_letter_key(step.dead_letter),
                                             value=step.dead_letter.model_dump_json().encode())

    def decide(self, value: bytes | None, position: Position) -> Step:
        """Exactly one step for any inbound message, with its reason; never raises.

        Invalid events are the router's to dead-letter: here they only count (by the boundary's
        reason). An unexpected error (a bug) becomes a dead letter `internal_error` of this
        service, so one event cannot stop every other case's broadcast.
        """
        try:
            return self._decide(value)
        except Exception as exc:
            event_id, _ = sniff_ids(value)
            refusal = fault("broadcast_event", exc, event_id=event_id, topic=position.topic,
                            partition=position.partition, offset=position.offset)
            letter = dead_letter(Refusal(refusal.reason, refusal.fields, event_id), value, position, self.clock(),
                                 service="broadcast")
            return Step("internal_error", dead_letter=letter)

    def _decide(self, value: bytes | None) -> Step:
        event = EVENT.decode(value)
        if isinstance(event, Refusal):
            return Step(event.reason)
        case_id = event_case(event)
        if case_id is None:
            return Step("not_a_case_event")
        outcome = on_event(self.states.get(case_id), event, self.config, self.clock())
        _check_writable(outcome)
        if outcome.state is None and not outcome.refusals:
            return Step("unchanged", outcome)
        return Step("refused" if outcome.refusals and not outcome.messages else "decided", outcome)

    async def _ticks(self, producer: AIOKafkaProducer) -> None:
        while True:
            self._wake.clear()
            async with self._lock:
                now = self.clock()
                for case in list(self.states.values()):
                    outcome = on_tick(case, self.config, now)
                    if outcome.state is not None:
                        await self._apply(producer, outcome)
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        dues = [d for c in self.states.values() if (d := next_due(c, self.config)) is not None]
        timeout = self.settings.max_tick_seconds
        if dues:
            timeout = min(timeout, max(0.0, (min(dues) - self.clock()).total_seconds()) + 0.01)
        # A new alert wakes the clock early: its first due time may be sooner than the sleep.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _apply(self, producer: AIOKafkaProducer, outcome: Outcome) -> None:
        state = outcome.state
        if state is not None:
            await self._write_state(producer, state)
            if outcome.messages:
                await self._publish(producer, state.case_id, outcome.messages)
                state = state.model_copy(update={"pending": ()})
                await self._write_state(producer, state)
                for m in outcome.messages:
                    self.metrics.broadcasts.labels(m.msg_type).inc()
                    log.info("broadcast_sent", case_id=str(state.case_id), identifier=m.identifier,
                             msg_type=m.msg_type, status=m.status, radius_km=m.radius_km, channels=m.channels)
                self._wake.set()
            self.metrics.active.set(self._count_active())
        if outcome.withdrawn is not None and state is not None:
            self.metrics.withdrawals.labels(outcome.withdrawn).inc()
            log.info("broadcast_withdrawn", case_id=str(state.case_id), reason=outcome.withdrawn,
                     cancels=len(outcome.messages))
        for refusal in outcome.refusals:
            await self._refuse(producer, refusal)

    async def _write_state(self, producer: AIOKafkaProducer, state: CaseBroadcast) -> None:
        await producer.send_and_wait(BROADCAST_STATE.name, key=str(state.case_id).encode(),
                                     value=state.model_dump_json().encode())
        self.states[state.case_id] = state

    async def _publish(self, producer: AIOKafkaProducer, case_id: uuid.UUID, messages: list[CapMessage] |
                       tuple[CapMessage, ...]) -> None:
        sends = []
        for m in messages:
            assert m.xml is not None, "an outbox message always keeps its XML"
            headers = [("content-type", CAP_CONTENT_TYPE.encode()), ("cap-identifier", m.identifier.encode()),
                       ("cap-msg-type", m.msg_type.encode()), ("cap-status", m.status.encode())]
            for channel in m.channels:
                sends.append(await producer.send(broadcast_topic(channel).name, key=str(case_id).encode(),
                                                 value=m.xml.encode(), headers=headers))
        await asyncio.gather(*sends)

    async def _refuse(self, producer: AIOKafkaProducer, refusal: BroadcastRefusal) -> None:
        await producer.send_and_wait(BROADCAST_REFUSALS.name, key=refusal.key, value=refusal.model_dump_json().encode())
        self.metrics.refusals.labels(refusal.reason).inc()
        log.warning("broadcast_refused", event_id=str(refusal.event_id), reason=refusal.reason,
                    reporter_agency=refusal.reporter_agency)

    def _count_active(self) -> int:
        return sum(1 for c in self.states.values() if c.active)


@dataclass(frozen=True)
class Step:
    """What one inbound message did: its reason (a metric label), and what to write."""

    reason: str
    outcome: Outcome | None = None
    dead_letter: DeadLetter | None = None


#: The service's own state records: larger than an event (they keep the CAP messages sent).
STATE: Contract[CaseBroadcast] = Contract(
    TypeAdapter(CaseBroadcast), invalid="invalid_state",
    limits=Limits(max_bytes=900 * 1024, max_string_chars=256 * 1024))


def _check_writable(outcome: Outcome) -> None:
    """Serialise what the outcome will write, inside the guarded step: a record that cannot be
    written (it never should) fails here as one message's internal error, not mid-way through
    the writes, where it would stop the service."""
    if outcome.state is not None:
        outcome.state.model_dump_json()
    for refusal in outcome.refusals:
        refusal.model_dump_json()


def _dead_letter_key(letter: DeadLetter) -> bytes:
    return (letter.event_id or f"{letter.topic}:{letter.partition}:{letter.offset}").encode()
