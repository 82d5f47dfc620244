"""What the intake admits onto the bus, decided once for both of its ways in.

An agency reaches `events.inbound` and `answers.referrals` through the intake only: over HTTP
with its token (`routes.py`: `POST /v1/events`, `POST /v1/referrals/{id}/answers`) or over Kafka
on its own two topics, which only its principal may write (`gate.py`: `agency.<code>.events`,
`agency.<code>.answers`). Either way the agency is proven (the token, the topic), never read from
the message, and the same functions here decide:

- an event (`admit_event`): `reporter.agency` is the agency (403 `agency_mismatch`), the agency
  may publish the kind (403 `kind_not_permitted`), the event id is the agency's across replicas
  (`intake.claims`: 409 `event_id_conflict`) and a repeat is the original (no second publish);
  then the event is published keyed by case id else event id, its acceptance recorded on the
  claims topic and its audit line written;
- an answer (`admit_answer`): the agency it names is the agency (403 `agency_mismatch`), the bus
  knows the id (404 `unknown_id`), the agency was addressed or escalated to (403 `not_entitled`),
  the answer still changes something (409 `already_final` / `no_effect`), its `response_id` is not
  another answer's (409 `response_id_conflict`) and a repeat is the original; then the answer is
  published dated by the bus, and its audit line written.

A refusal is an `IntakeError` (status, stable code, fixed message, field names): the HTTP routes
answer it, the gate turns it into a dead letter or a refused answer with the same code. Each
outcome is counted through the caller's `count` (the HTTP path's and the gate's metrics differ).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import structlog

from bus.credentials import Credentials, Principal
from bus.delivery_metrics import DeliveryMetrics
from bus.kafka.publisher import BrokerUnavailable, Publisher
from bus.settings import KafkaSettings, StateSettings
from schemas.alerts import FINAL_STATUSES, ReferralResponse, dump, next_status
from schemas.answers import AnswerRequest
from schemas.errors import FieldError
from schemas.events import Event
from schemas.receipts import audit_record
from services.intake.auth import Authenticator
from services.intake.claims import Claims
from services.intake.duties import Duties, DutiesUnavailable
from services.intake.errors import IntakeError
from services.intake.metrics import IntakeMetrics
from services.intake.settings import IntakeSettings
from services.intake.store import Accepted, Duty, IntakeStore, TakenAnswer, body_digest
from topics.catalog import ANSWERS, AUDIT, EVENTS

log = structlog.get_logger("intake")

#: Counts one outcome (a metric label of the caller's own counter).
Count = Callable[[str], None]


@dataclass
class IntakeContext:
    """Everything a request or a gate message needs, built once at startup."""

    settings: IntakeSettings
    kafka: KafkaSettings
    state: StateSettings
    credentials: Credentials
    auth: Authenticator
    claims: Claims
    store: IntakeStore
    publisher: Publisher
    metrics: IntakeMetrics
    delivery_metrics: DeliveryMetrics
    duties: Duties
    # One lock per event id (or response id) in flight, so two racing copies publish once.
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, event_id: str) -> asyncio.Lock:
        return self._locks.setdefault(event_id, asyncio.Lock())

    def release(self, event_id: str) -> None:
        lock = self._locks.get(event_id)
        if lock is not None and not lock.locked():
            del self._locks[event_id]


@dataclass(frozen=True)
class Admitted:
    """An event on the broker: its original acceptance, and whether this was a repeat of it."""

    accepted: Accepted
    repeat: bool


@dataclass(frozen=True)
class AnswerAdmitted:
    """An answer on the broker: its original record, and whether this was a repeat of it."""

    taken: TakenAnswer
    repeat: bool


def unavailable(what: str, retry_after_s: int) -> IntakeError:
    return IntakeError(503, "broker_unavailable", f"the {what} was not stored; send it again later (your outbox will)",
                       headers={"Retry-After": str(retry_after_s)})


# --- events ------------------------------------------------------------------------------------

async def admit_event(ctx: IntakeContext, who: Principal, event: Event, body: bytes, count: Count) -> Admitted:
    """Authorise and publish one validated event as `who`; IntakeError when refused."""
    event_id = str(event.event_id)
    if event.reporter.agency != who.agency:
        count("forbidden")
        raise IntakeError(403, "agency_mismatch", "reporter.agency must be the agency the token belongs to",
                          fields=[FieldError(field="reporter.agency", reason="not the authenticated agency")])
    if not ctx.credentials.may_publish(who.agency, event.kind):
        count("forbidden")
        raise IntakeError(403, "kind_not_permitted", f"agency {who.agency} may not publish events of kind {event.kind}",
                          fields=[FieldError(field="kind", reason="not permitted for this agency")])
    async with ctx.lock(event_id):
        try:
            original = ctx.store.accepted(event_id)
            if original is None:
                # Claimed first, published after: an agency re-using another agency's event id
                # (it sees them in referrals) is refused by every replica, and nothing is published.
                owner = await _claim(ctx, event_id, who, count)
                if owner != who.agency:
                    _conflict(count)
                original = ctx.store.accepted(event_id)  # accepted meanwhile by another replica?
            if original is None:
                return Admitted(await _publish(ctx, who, event_id, event.case_id, body, count), repeat=False)
            if original.agency != who.agency or original.body_sha256 != body_digest(body):
                _conflict(count)
            count("duplicate")
            return Admitted(original, repeat=True)
        finally:
            ctx.release(event_id)


async def _claim(ctx: IntakeContext, event_id: str, who: Principal, count: Count) -> str:
    try:
        return await ctx.claims.claim(event_id, who.agency)
    except BrokerUnavailable as exc:
        count("unavailable")
        raise unavailable("event", ctx.settings.retry_after_s) from exc


def _conflict(count: Count) -> NoReturn:
    count("conflict")
    raise IntakeError(409, "event_id_conflict", "this event_id was already used for a different event; use a new id")


async def _publish(ctx: IntakeContext, who: Principal, event_id: str, case_id: uuid.UUID | None,
                   body: bytes, count: Count) -> Accepted:
    # Keyed like the router expects: by case when known, so one case's events stay in order.
    key = str(case_id or event_id).encode()
    try:
        written = await ctx.publisher.publish(EVENTS.name, key, body)
    except BrokerUnavailable as exc:
        count("unavailable")
        raise unavailable("event", ctx.settings.retry_after_s) from exc
    now = dt.datetime.now(dt.UTC)
    accepted = await ctx.claims.accepted(Accepted(event_id, who.agency, body_digest(body), now,
                                                  written.partition, written.offset))
    count("accepted")
    ctx.metrics.published.labels(who.agency).inc()
    log.info("event_accepted", agency=who.agency, partition=written.partition, offset=written.offset)
    record = audit_record(event_id, "published", who.agency, now, agency=who.agency, detail=who.token_id)
    try:
        await ctx.publisher.publish(AUDIT.name, record.key, record.model_dump_json().encode())
    except BrokerUnavailable:
        # The event itself is safe on the broker; the missing audit line is logged with its id.
        log.warning("audit_write_failed", action="published")
    return accepted


# --- answers -----------------------------------------------------------------------------------

async def admit_answer(ctx: IntakeContext, who: Principal, asked: AnswerRequest, referral_id: uuid.UUID,
                       body: bytes, count: Count, *, lookup_wait_s: float | None = None) -> AnswerAdmitted:
    """Authorise and publish one validated answer to `referral_id` as `who`; IntakeError when refused."""
    key, response_id = str(referral_id), str(asked.response_id)
    if asked.agency is not None and asked.agency != who.agency:
        _answer_refused(count, 403, "agency_mismatch", "agency must be the agency the token belongs to",
                        FieldError(field="agency", reason="not the authenticated agency"))
    async with ctx.lock(response_id):
        try:
            digest = body_digest(body)
            taken = ctx.store.taken_answer(response_id)
            if taken is not None:
                if (taken.agency, taken.referral_id, taken.body_sha256) != (who.agency, key, digest):
                    _answer_refused(count, 409, "response_id_conflict",
                                    "this response_id was already used for another answer; use a new id")
                count("duplicate")
                return AnswerAdmitted(taken, repeat=True)
            duty = await _duty(ctx, key, count, ctx.settings.answer_lookup_wait_s if lookup_wait_s is None
                               else lookup_wait_s)
            twin = ctx.duties.get(duty.twin_id) if duty.twin_id else None
            # The very same answer tried before, whose publish timed out, may have reached the
            # broker and been applied since: its state then says it changes nothing, but it is
            # sent again (the alerts service drops the copy by its response_id), not refused.
            retried = ctx.store.attempted_answer(response_id, key, who.agency, digest)
            authorise(who, asked, duty, twin, count, retried=retried)
            ctx.store.attempt_answer(response_id, key, who.agency, digest)
            return AnswerAdmitted(await _publish_answer(ctx, who, asked, duty, body, count), repeat=False)
        finally:
            ctx.release(response_id)


async def _duty(ctx: IntakeContext, key: str, count: Count, wait_s: float) -> Duty:
    try:
        duty = await ctx.duties.find(key, wait_s)
    except DutiesUnavailable as exc:
        count("unavailable")
        raise IntakeError(503, "states_unavailable",
                          "the bus's alerts and referrals are not readable right now; send the answer again later",
                          headers={"Retry-After": str(ctx.settings.retry_after_s)}) from exc
    if duty is None:
        _answer_refused(count, 404, "unknown_id", "the bus knows no alert or referral with this id")
    return duty


def authorise(who: Principal, asked: AnswerRequest, duty: Duty, twin: Duty | None, count: Count, *,
              retried: bool = False) -> None:
    """The alerts service's rule (`lifecycle.authorise`), on what this replica knows of the states."""
    entitled = duty.agencies | (twin.agencies if twin is not None else frozenset())
    if who.agency not in entitled:
        _answer_refused(count, 403, "not_entitled",
                        "your agency is not one this alert or referral was addressed or escalated to")
    if retried:
        return
    open_ones = [d for d in (duty, twin) if d is not None and d.status not in FINAL_STATUSES]
    if not open_ones and not (duty.twin_id and twin is None):
        _answer_refused(count, 409, "already_final", f"this alert or referral is {duty.status}: no answer changes it")
    if open_ones and all(next_status(d.status, asked.answer) is None for d in open_ones):
        _answer_refused(count, 409, "no_effect",
                        f"this alert or referral is {duty.status}: {asked.answer} changes nothing",
                        FieldError(field="answer", reason=f"not after {duty.status}"))


def _answer_refused(count: Count, status: int, code: str, message: str, *fields: FieldError) -> NoReturn:
    count(code if code in ("unknown_id", "not_entitled", "agency_mismatch", "already_final", "no_effect")
          else "conflict")
    raise IntakeError(status, code, message, fields=list(fields))


async def _publish_answer(ctx: IntakeContext, who: Principal, asked: AnswerRequest, duty: Duty,
                          body: bytes, count: Count) -> TakenAnswer:
    now = dt.datetime.now(dt.UTC)
    answer = ReferralResponse(
        response_id=asked.response_id, referral_id=uuid.UUID(duty.id), answer=asked.answer, agency=who.agency,
        reason=asked.reason, note=asked.note, officer=asked.officer, exercise=asked.exercise,
        responded_at=asked.responded_at or now)
    try:
        await ctx.publisher.publish(ANSWERS.name, answer.key, dump(answer))
    except BrokerUnavailable as exc:
        count("unavailable")
        raise unavailable("answer", ctx.settings.retry_after_s) from exc
    taken = ctx.store.take_answer(TakenAnswer(str(asked.response_id), duty.id, who.agency, asked.answer,
                                              body_digest(body), now))
    count("accepted")
    log.info("answer_accepted", agency=who.agency, referral_id=duty.id, answer=asked.answer,
             response_id=str(asked.response_id))
    record = audit_record(duty.event_id, "answered", who.agency, now, referral_id=uuid.UUID(duty.id),
                          agency=who.agency, detail=asked.answer)
    try:
        await ctx.publisher.publish(AUDIT.name, record.key, record.model_dump_json().encode())
    except BrokerUnavailable:
        log.warning("audit_write_failed", action="answered")
    return taken
