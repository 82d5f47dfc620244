"""The gate: what agencies' own systems write on their own Kafka topics, admitted as the HTTP API admits it.

A Kafka record carries no proof of who wrote it: on `events.inbound`, `reporter.agency` is a field
like any other. So an agency's own system (issue #18) writes only its two topics,
`agency.<code>.events` and `agency.<code>.answers`, which no principal but `User:agency.<code>`
may write (deploy/acl.yaml): the topic says who wrote a message. The gate reads them and admits
each message exactly as `POST /v1/events` / `POST /v1/referrals/{id}/answers` admit the same body
with that agency's token — the same trust boundary (`bus.boundary`), then the same functions
(`admission.py`): the agency named must be the topic's, the kind one it may publish, the event id
its own (`intake.claims`), the answer one it may give. Admitted messages are published as the
intake publishes them (same keys, claims, idempotency and audit line, whose detail is the gate
topic). Refused events become a dead letter on `events.deadletter` (reason: the HTTP error code,
e.g. `agency_mismatch`, `kind_not_permitted`, `event_id_conflict`, or the boundary's), refused
answers a `RefusedAnswer` on `answers.refused`; and each also a `RefusalNotice` on the agency's
own `agency.<code>.refusals`, which only it reads (those shared topics are the operators' and the
console's): ids and codes only, never what the sender wrote.

At-least-once: the gate commits a message's offset only after what it decided is on the broker
(the event and its claim and acceptance, or the refusal and its notice). A restart reads again
from the last commit; the claims and the acceptances make the repeat a duplicate, not a second
event (the acceptance is in this replica's store before the event's publish returns; another
replica reads it from the claims topic). A refusal decided again is written again: its notice
has the same key (the refused message's position) and the same content but its times. What
the gate cannot decide now — the broker, or the alerts service's states, unavailable (the HTTP
path's 503) — is read again after a pause, never refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from bus.answer_refusals import AnswerIds, refused, sniff
from bus.boundary import ANSWER, EVENT, Position, Refusal, dead_letter, fault
from bus.credentials import Principal
from bus.kafka.clients import consumer as make_consumer
from bus.kafka.publisher import BrokerUnavailable
from bus.refusal_notices import answer_notice, event_notice
from schemas.alerts import ReferralResponse
from schemas.answers import REFUSAL_REASONS, AnswerRequest, RefusalReason
from schemas.errors import FieldError
from schemas.notices import RefusalNotice
from services.intake.admission import IntakeContext, admit_answer, admit_event
from services.intake.errors import IntakeError
from topics.catalog import (
    ANSWERS_REFUSED,
    DEAD_LETTERS,
    current_agencies,
    gate_agency,
    gate_events_topic_name,
    gate_topics,
    key_of,
    refusals_topic_name,
)

log = structlog.get_logger("intake")

#: How long the gate pauses before reading again a message it could not decide.
RETRY_S = 1.0


@dataclass(frozen=True)
class Outcome:
    """What the gate did with one message: `admitted`, `duplicate`, or the refusal's reason code;
    `retry`: nothing was decided (read it again later, do not commit)."""

    outcome: str
    retry: bool = False


def gate_topic_names() -> list[str]:
    """Every current agency's two gate topics."""
    return [t.name for a in current_agencies() for t in gate_topics(a)]


def _ignore(_: str) -> None:
    """The HTTP outcome counters are the HTTP path's: the gate counts its own outcomes."""


def _answer_reason(code: str) -> RefusalReason:
    for reason in REFUSAL_REASONS:
        if reason == code:
            return reason
    return "internal_error"


class Gate:
    """Admits one message at a time from the agencies' gate topics (`handle`), and reads them (`run`)."""

    def __init__(self, ctx: IntakeContext, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.ctx = ctx
        self._clock = clock
        #: Refused messages whose shared record is on the broker but whose notice is not: decided
        #: again (the notice failed), they do not get a second record.
        self._recorded: set[Position] = set()

    async def handle(self, topic: str, partition: int, offset: int, raw: bytes | None) -> Outcome:
        """Decide one message and write what was decided. Never raises for what the message holds."""
        agency = gate_agency(topic)
        if agency is None:
            return Outcome("not_a_gate_topic")
        message = "event" if topic == gate_events_topic_name(agency) else "answer"
        position = Position(topic, partition, offset)
        try:
            if message == "event":
                outcome = await self._event(agency, position, raw)
            else:
                outcome = await self._answer(agency, position, raw)
        except BrokerUnavailable:
            outcome = Outcome("unavailable", retry=True)
        except Exception as exc:  # the last resort: one message the gate cannot handle is one refusal
            refusal = fault("gate", exc, topic=topic, partition=partition, offset=offset)
            self.ctx.metrics.internal_errors.labels("gate").inc()
            try:
                if message == "event":
                    outcome = await self._dead(agency, refusal, raw, position)
                else:
                    outcome = await self._refuse_answer(agency, sniff(raw), "internal_error", refusal.fields,
                                                        position)
            except Exception:
                outcome = Outcome("unavailable", retry=True)
        if not outcome.retry:
            self.ctx.metrics.gate.labels(agency, message, outcome.outcome).inc()
            if outcome.outcome in ("admitted", "duplicate"):
                log.info("gate_admitted", agency=agency, message=message, outcome=outcome.outcome,
                         partition=partition, offset=offset)
            else:
                log.warning("gate_refused", agency=agency, message=message, reason=outcome.outcome,
                            partition=partition, offset=offset)
        return outcome

    async def _event(self, agency: str, position: Position, raw: bytes | None) -> Outcome:
        event = EVENT.decode(raw)
        if isinstance(event, Refusal):
            return await self._dead(agency, event, raw, position)
        assert raw is not None  # decoded
        try:
            admitted = await admit_event(self.ctx, Principal(agency, position.topic), event, raw, _ignore)
        except IntakeError as refused_:
            if refused_.status >= 500:
                return Outcome(refused_.code, retry=True)
            return await self._dead(agency, Refusal(refused_.code, tuple(refused_.fields),
                                                    event_id=str(event.event_id),
                                                    reporter_agency=event.reporter.agency), raw, position)
        return Outcome("duplicate" if admitted.repeat else "admitted")

    async def _dead(self, agency: str, refusal: Refusal, raw: bytes | None, position: Position) -> Outcome:
        now = self._clock()
        letter = dead_letter(refusal, raw, position, now, service="intake")
        key = key_of("event_id_else_position", {"event_id": letter.event_id},
                     position=f"{position.topic}:{position.partition}:{position.offset}")
        await self._record(position, DEAD_LETTERS.name, key, letter.model_dump_json().encode())
        await self._notify(agency, position, event_notice(refusal, position, now))
        return Outcome(refusal.reason)

    async def _answer(self, agency: str, position: Position, raw: bytes | None) -> Outcome:
        response = ANSWER.decode(raw)
        if isinstance(response, Refusal):
            reason = _answer_reason(response.reason) if response.reason in REFUSAL_REASONS else "invalid_answer"
            return await self._refuse_answer(agency, sniff(raw), reason, response.fields, position)
        assert raw is not None  # decoded
        try:
            admitted = await admit_answer(self.ctx, Principal(agency, position.topic), _request(response),
                               response.referral_id, raw, _ignore,
                               lookup_wait_s=self.ctx.settings.gate_lookup_wait_s)
        except IntakeError as refused_:
            if refused_.status >= 500:
                return Outcome(refused_.code, retry=True)
            return await self._refuse_answer(agency, AnswerIds.of(response), _answer_reason(refused_.code),
                                             tuple(refused_.fields), position)
        return Outcome("duplicate" if admitted.repeat else "admitted")

    async def _refuse_answer(self, agency: str, ids: AnswerIds, reason: RefusalReason,
                             fields: tuple[FieldError, ...], position: Position) -> Outcome:
        now = self._clock()
        record = refused(ids, reason, now, now, fields=fields, position=position)
        await self._record(position, ANSWERS_REFUSED.name, record.key, record.model_dump_json().encode())
        await self._notify(agency, position, answer_notice(ids, reason, fields, position, now, now))
        return Outcome(reason)

    async def _record(self, position: Position, topic: str, key: bytes, value: bytes) -> None:
        """Write a refusal's shared record, unless this gate already did for this message."""
        if position not in self._recorded:
            await self.ctx.publisher.publish(topic, key, value)
            self._recorded.add(position)

    async def _notify(self, agency: str, position: Position, notice: RefusalNotice) -> None:
        """Tell the agency (the topic's, whatever the message named) why: after the shared record,
        so that a notice never stands for a refusal the operators cannot see."""
        await self.ctx.publisher.publish(refusals_topic_name(agency), notice.key, notice.model_dump_json().encode())
        self._recorded.discard(position)

    async def run(self) -> None:
        """Read every agency's gate topics in the gate's consumer group; reconnects.

        Each topic partition is decided by a task of its own, one message at a time, in order, and
        committed message by message; the partition is paused while its task runs. So one agency
        whose messages are slow to decide (answers to ids the bus does not know wait for the
        states) delays only itself, never another agency's missing-child report."""
        names = gate_topic_names()
        backoff = 0.5
        while True:
            consumer = make_consumer(self.ctx.kafka, *names, group_id=self.ctx.settings.gate_group)
            running: dict[TopicPartition, asyncio.Task[None]] = {}
            try:
                await consumer.start()
                backoff = 0.5
                while True:
                    batch = await consumer.getmany(timeout_ms=200 if running else 1000, max_records=100)
                    for tp, messages in batch.items():
                        if messages and tp not in running:
                            consumer.pause(tp)
                            running[tp] = asyncio.create_task(self._partition(consumer, tp, messages))
                    for tp in [tp for tp, task in running.items() if task.done()]:
                        running.pop(tp).result()  # a KafkaError (a lost partition's commit) reconnects
                        if tp in consumer.assignment():
                            consumer.resume(tp)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                log.warning("gate_retry_connect", error=type(exc).__name__, in_s=backoff)
            finally:
                for task in running.values():
                    task.cancel()
                for task in running.values():
                    with contextlib.suppress(BaseException):
                        await task
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), 5)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _partition(self, consumer: AIOKafkaConsumer, tp: TopicPartition, messages: list[Any]) -> None:
        """Decide one partition's messages in order, committing each once decided; at the first one
        that cannot be decided now, seek back to it and pause (it is read again)."""
        for m in messages:
            outcome = await self.handle(tp.topic, tp.partition, m.offset, m.value)
            if outcome.retry:
                consumer.seek(tp, m.offset)
                log.warning("gate_retry", reason=outcome.outcome, topic=tp.topic, partition=tp.partition,
                            offset=m.offset)
                await asyncio.sleep(RETRY_S)
                return
            await consumer.commit({tp: m.offset + 1})


def _request(response: ReferralResponse) -> AnswerRequest:
    """The answer as the HTTP endpoint's body would say it (the id in it, not in a path); a time
    the sender did not give is not one (the bus dates the answer, as for HTTP)."""
    return AnswerRequest(response_id=response.response_id, answer=response.answer, reason=response.reason,
                         note=response.note, officer=response.officer, exercise=response.exercise,
                         referral_id=response.referral_id, agency=response.agency,
                         responded_at=response.responded_at if "responded_at" in response.model_fields_set else None)

