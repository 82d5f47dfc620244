"""The intake's HTTP routes: publish an event, read its receipt, stream an agency's referrals,
answer a referral or an alert.

Checks run in a fixed order, cheapest and least revealing first: credentials (401, or 429 after
too many failures), content type (415), size (413), the body's arrival (408), the trust boundary
and validation (422), then authorisation against the validated event (403), then ownership of
the event id across replicas and idempotency (409, or the original answer), then the broker
(202 or 503). No answer repeats what the sender wrote.

Answering (`POST /v1/referrals/{id}/answers`) runs the same first checks, then: the id the bus
knows (404), the agency entitled to answer it (403), an answer that still changes something (409),
idempotency by `response_id`, the broker (202 or 503). The agency is the token's, the time the
bus's; the alerts service authorises the answer again when it applies it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NoReturn

import structlog
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from bus.agency_reader import AgencyReader, AuditSink
from bus.boundary import ANSWER_REQUEST, EVENT, Refusal
from bus.credentials import Credentials, Principal
from bus.delivery_metrics import DeliveryMetrics
from bus.kafka.publisher import BrokerUnavailable, Publisher
from bus.settings import KafkaSettings, StateSettings
from bus.throttle import Throttled
from schemas.alerts import FINAL_STATUSES, ReferralResponse, dump, next_status
from schemas.answers import AnswerRequest
from schemas.contract import openapi_schema
from schemas.errors import FieldError
from schemas.events import Event
from schemas.receipts import Receipt, audit_record
from schemas.wire import UNSUPPORTED_VERSION, Uuid
from services.intake.auth import Authenticator
from services.intake.claims import Claims
from services.intake.duties import Duties, DutiesUnavailable
from services.intake.errors import IntakeError, error_responses
from services.intake.metrics import IntakeMetrics
from services.intake.settings import IntakeSettings
from services.intake.store import Accepted, Duty, IntakeStore, TakenAnswer, body_digest
from topics.catalog import ANSWERS, AUDIT, EVENTS

log = structlog.get_logger("intake")

_bearer = HTTPBearer(auto_error=False, description="An agency token: `rb_<id>_<secret>`.")


@dataclass
class IntakeContext:
    """Everything a request needs, built once at startup."""

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


class AcceptedResponse(BaseModel):
    """The intake's answer once the broker has the event: keep `event_id` as proof."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    status: Literal["accepted"] = "accepted"
    agency: str
    accepted_at: dt.datetime
    receipt_url: str


class AnswerAccepted(BaseModel):
    """The intake's answer once the broker has the agency's answer: the alerts service applies it
    (or refuses it on `answers.refused`) in a moment, and the tracked state shows it."""

    model_config = ConfigDict(frozen=True)

    response_id: str
    referral_id: str
    status: Literal["accepted"] = "accepted"
    agency: str
    answer: str
    accepted_at: dt.datetime


class EventStatus(BaseModel):
    """An event's state for its reporter: accepted by the intake, then routed or refused."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    status: Literal["accepted", "routed", "refused"]
    accepted_at: dt.datetime | None = None
    receipt: Receipt | None = None


def context(request: Request) -> IntakeContext:
    ctx: IntakeContext = request.app.state.intake
    return ctx


Ctx = Annotated[IntakeContext, Depends(context)]


async def principal(request: Request, ctx: Ctx,
                    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """The agency behind the bearer token; 401, or 429 after too many failed attempts."""
    client = request.client.host if request.client is not None else "unknown"
    who = await ctx.auth.authenticate(creds.credentials if creds is not None else None, client)
    if isinstance(who, Throttled):
        ctx.metrics.requests.labels("throttled").inc()
        raise IntakeError(429, "too_many_attempts",
                          "too many failed authentication attempts from this token or client; retry later",
                          headers={"Retry-After": str(who.retry_after_s)})
    if who is None:
        ctx.metrics.requests.labels("unauthenticated").inc()
        raise IntakeError(401, "unauthenticated", "a valid agency token is required (Authorization: Bearer)",
                          headers={"WWW-Authenticate": "Bearer"})
    return who


Who = Annotated[Principal, Depends(principal)]


def _event_body_schema() -> dict[str, Any]:
    return openapi_schema("Event")[0]  # the published event schema (schemas/json/event.schema.json)


router = APIRouter()


@router.post(
    "/v1/events", status_code=202, response_model=AcceptedResponse,
    summary="Publish an event as the authenticated agency",
    responses=error_responses(401, 403, 408, 409, 413, 415, 422, 429, 503),
    openapi_extra={"requestBody": {"required": True,
                                   "content": {"application/json": {"schema": _event_body_schema()}}}},
)
async def publish_event(request: Request, response: Response, ctx: Ctx, who: Who) -> AcceptedResponse:
    """Validate, authorise and publish one event; 202 only once the broker has acknowledged it."""
    started = time.monotonic()
    body = await _read_body(request, ctx)
    event = _validate(body, ctx)
    event_id = str(event.event_id)
    structlog.contextvars.bind_contextvars(event_id=event_id)
    try:
        if event.reporter.agency != who.agency:
            ctx.metrics.requests.labels("forbidden").inc()
            raise IntakeError(403, "agency_mismatch",
                              "reporter.agency must be the agency the token belongs to",
                              fields=[FieldError(field="reporter.agency", reason="not the authenticated agency")])
        if not ctx.credentials.may_publish(who.agency, event.kind):
            ctx.metrics.requests.labels("forbidden").inc()
            raise IntakeError(403, "kind_not_permitted",
                              f"agency {who.agency} may not publish events of kind {event.kind}",
                              fields=[FieldError(field="kind", reason="not permitted for this agency")])
        async with ctx.lock(event_id):
            original = ctx.store.accepted(event_id)
            if original is None:
                # Claimed first, published after: an agency re-using another agency's event id
                # (it sees them in referrals) is refused by every replica, and nothing is published.
                owner = await _claim(ctx, event_id, who)
                if owner != who.agency:
                    _conflict(ctx)
                original = ctx.store.accepted(event_id)  # accepted meanwhile by another replica?
            if original is None:
                original = await _publish(ctx, who, event_id, event.case_id, body)
                ctx.metrics.publish_seconds.observe(time.monotonic() - started)
            else:
                _check_same(original, who, body, ctx)
                ctx.metrics.requests.labels("duplicate").inc()
                response.headers["Idempotent-Replayed"] = "true"
        return AcceptedResponse(event_id=event_id, agency=original.agency, accepted_at=original.accepted_at,
                                receipt_url=f"/v1/events/{event_id}")
    finally:
        ctx.release(event_id)
        structlog.contextvars.unbind_contextvars("event_id")


@router.get("/v1/events/{event_id}", response_model=EventStatus, summary="An event's receipt",
            responses=error_responses(401, 404, 422, 429))
async def event_status(ctx: Ctx, who: Who, event_id: Annotated[uuid.UUID, Path()]) -> EventStatus:
    """Where the event was routed and under which clauses, or why it was refused (reporter only)."""
    key = str(event_id)
    owner = ctx.store.owner(key)
    accepted = ctx.store.accepted(key)
    # Only the receipt issued to the caller's agency: another agency's event with the same id
    # (published around the intake) has a receipt of its own, which this one never shows.
    receipt = ctx.store.receipt(key, who.agency)
    mine = owner == who.agency or (owner is None and receipt is not None)
    if not mine:
        # Same answer for "not yours" and "unknown": nobody learns of another agency's events.
        raise IntakeError(404, "not_found", "no event with this id was published by your agency")
    status: Literal["accepted", "routed", "refused"] = receipt.status if receipt is not None else "accepted"
    return EventStatus(event_id=key, status=status,
                       accepted_at=accepted.accepted_at if accepted and accepted.agency == who.agency else None,
                       receipt=receipt)


@router.get(
    "/v1/referrals/stream", summary="Server-sent events: the authenticated agency's referrals",
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
               **error_responses(401, 422, 429, 503)},
    response_class=StreamingResponse,
)
async def referral_stream(
    ctx: Ctx, who: Who,
    reader: Annotated[str, Query(pattern=r"^[a-z0-9_-]{1,32}$",
                                 description="A reader name: each name has its own position.")] = "default",
    max_items: Annotated[int | None, Query(alias="max", ge=1, le=10_000,
                                           description="Close after this many referrals.")] = None,
    idle_exit: Annotated[float | None, Query(gt=0, le=3600,
                                             description="Close after this many idle seconds.")] = None,
) -> StreamingResponse:
    """Each referral for the caller's agency once (`event: referral`, `id:` the referral id).

    The position is the consumer group `delivery.<agency>[.<reader>]`: a referral is committed
    once written to the connection, so a reconnecting reader continues after it.
    """
    group = f"delivery.{who.agency}" + ("" if reader == "default" else f".{reader}")
    # Join the group before answering, so that a broker outage is a clear 503, not a stream
    # that breaks after its 200 header.
    agency_reader = AgencyReader(ctx.kafka, ctx.state.state_dir, who.agency, group=group,
                                 metrics=ctx.delivery_metrics, audit=AuditSink(ctx.publisher))
    try:
        if not ctx.kafka.bootstrap_servers:
            raise KafkaError("no broker configured")
        await asyncio.wait_for(agency_reader.__aenter__(), ctx.settings.stream_start_timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("referral_stream_unavailable", agency=who.agency, error=type(exc).__name__)
        await agency_reader.__aexit__(None, None, None)
        raise IntakeError(503, "broker_unavailable", "the referral stream is unavailable; retry later",
                          headers={"Retry-After": str(ctx.settings.retry_after_s)}) from exc
    return StreamingResponse(_sse(agency_reader, max_items, idle_exit, ctx.settings.keepalive_s),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _answer_body_schema() -> dict[str, Any]:
    return openapi_schema("AnswerRequest")[0]  # the published schema (schemas/json/answer_request.schema.json)


@router.post(
    "/v1/referrals/{referral_id}/answers", status_code=202, response_model=AnswerAccepted,
    summary="Answer an alert or referral as the authenticated agency",
    responses=error_responses(401, 403, 404, 408, 409, 413, 415, 422, 429, 503),
    openapi_extra={"requestBody": {"required": True,
                                   "content": {"application/json": {"schema": _answer_body_schema()}}}},
)
async def answer_referral(request: Request, response: Response, ctx: Ctx, who: Who,
                          referral_id: Annotated[Uuid, Path(description="An alert or referral id (a UUID in its one "
                                                                        "form: lowercase, hyphenated).")]
                          ) -> AnswerAccepted:
    """Acknowledge, accept, reject (with a reason) or mark done (with a note) an alert or referral
    the agency was addressed or escalated to; 202 only once the broker has the answer.

    404 `unknown_id`: the bus knows no alert or referral with this id. 403 `not_entitled`: the
    agency was not one it was addressed or escalated to (`agency_mismatch`: the body names
    another agency). 409 `already_final` / `no_effect`: it is done, rejected, closed or grouped,
    or the answer would change nothing; `response_id_conflict`: the `response_id` was used for
    another answer. The same `response_id` again returns the first answer (header
    `Idempotent-Replayed: true`)."""
    body = await _read_body(request, ctx)
    asked = _answer_request(body, ctx, referral_id)
    key, response_id = str(referral_id), str(asked.response_id)
    if asked.agency is not None and asked.agency != who.agency:
        _answer_refused(ctx, 403, "agency_mismatch", "agency must be the agency the token belongs to",
                        FieldError(field="agency", reason="not the authenticated agency"))
    async with ctx.lock(response_id):
        try:
            taken = ctx.store.taken_answer(response_id)
            if taken is not None:
                if (taken.agency, taken.referral_id, taken.body_sha256) != (who.agency, key, body_digest(body)):
                    _answer_refused(ctx, 409, "response_id_conflict",
                                    "this response_id was already used for another answer; use a new id")
                ctx.metrics.answers.labels("duplicate").inc()
                response.headers["Idempotent-Replayed"] = "true"
                return _accepted(taken)
            duty = await _duty(ctx, key)
            twin = ctx.duties.get(duty.twin_id) if duty.twin_id else None
            # The very same answer tried before, whose publish timed out, may have reached the
            # broker and been applied since: its state then says it changes nothing, but it is
            # sent again (the alerts service drops the copy by its response_id), not refused.
            digest = body_digest(body)
            retried = ctx.store.attempted_answer(response_id, key, who.agency, digest)
            _authorise(ctx, who, asked, duty, twin, retried=retried)
            ctx.store.attempt_answer(response_id, key, who.agency, digest)
            taken = await _publish_answer(ctx, who, asked, duty, body)
            return _accepted(taken)
        finally:
            ctx.release(response_id)


def _answer_request(body: bytes, ctx: IntakeContext, referral_id: uuid.UUID) -> AnswerRequest:
    asked = ANSWER_REQUEST.decode(body)
    if isinstance(asked, Refusal):
        ctx.metrics.answers.labels("invalid").inc()
        status, message = _REFUSALS.get(asked.reason, (422, "the answer is invalid"))
        if asked.reason == "invalid_answer":
            message = "the answer is invalid"
        raise IntakeError(status, asked.reason, message, fields=list(asked.fields))
    if asked.referral_id is not None and asked.referral_id != referral_id:
        ctx.metrics.answers.labels("invalid").inc()
        raise IntakeError(422, "invalid_answer", "the answer is invalid",
                          fields=[FieldError(field="referral_id", reason="not the id in the path")])
    return asked


async def _duty(ctx: IntakeContext, key: str) -> Duty:
    try:
        duty = await ctx.duties.find(key, ctx.settings.answer_lookup_wait_s)
    except DutiesUnavailable as exc:
        ctx.metrics.answers.labels("unavailable").inc()
        raise IntakeError(503, "states_unavailable",
                          "the bus's alerts and referrals are not readable right now; send the answer again later",
                          headers={"Retry-After": str(ctx.settings.retry_after_s)}) from exc
    if duty is None:
        _answer_refused(ctx, 404, "unknown_id", "the bus knows no alert or referral with this id")
    return duty


def _authorise(ctx: IntakeContext, who: Principal, asked: AnswerRequest, duty: Duty, twin: Duty | None, *,
               retried: bool = False) -> None:
    """The alerts service's rule (`lifecycle.authorise`), on what this replica knows of the states."""
    entitled = duty.agencies | (twin.agencies if twin is not None else frozenset())
    if who.agency not in entitled:
        _answer_refused(ctx, 403, "not_entitled",
                        "your agency is not one this alert or referral was addressed or escalated to")
    if retried:
        return
    open_ones = [d for d in (duty, twin) if d is not None and d.status not in FINAL_STATUSES]
    if not open_ones and not (duty.twin_id and twin is None):
        _answer_refused(ctx, 409, "already_final", f"this alert or referral is {duty.status}: no answer changes it")
    if open_ones and all(next_status(d.status, asked.answer) is None for d in open_ones):
        _answer_refused(ctx, 409, "no_effect",
                        f"this alert or referral is {duty.status}: {asked.answer} changes nothing",
                        FieldError(field="answer", reason=f"not after {duty.status}"))


def _answer_refused(ctx: IntakeContext, status: int, code: str, message: str, *fields: FieldError) -> NoReturn:
    ctx.metrics.answers.labels(code if code in ("unknown_id", "not_entitled", "agency_mismatch", "already_final",
                                                "no_effect") else "conflict").inc()
    raise IntakeError(status, code, message, fields=list(fields))


async def _publish_answer(ctx: IntakeContext, who: Principal, asked: AnswerRequest, duty: Duty,
                          body: bytes) -> TakenAnswer:
    now = dt.datetime.now(dt.UTC)
    answer = ReferralResponse(
        response_id=asked.response_id, referral_id=uuid.UUID(duty.id), answer=asked.answer, agency=who.agency,
        reason=asked.reason, note=asked.note, officer=asked.officer, exercise=asked.exercise,
        responded_at=asked.responded_at or now)
    try:
        await ctx.publisher.publish(ANSWERS.name, answer.key, dump(answer))
    except BrokerUnavailable as exc:
        ctx.metrics.answers.labels("unavailable").inc()
        raise IntakeError(503, "broker_unavailable",
                          "the answer was not stored; send it again later (your outbox will)",
                          headers={"Retry-After": str(ctx.settings.retry_after_s)}) from exc
    taken = ctx.store.take_answer(TakenAnswer(str(asked.response_id), duty.id, who.agency, asked.answer,
                                              body_digest(body), now))
    ctx.metrics.answers.labels("accepted").inc()
    log.info("answer_accepted", agency=who.agency, referral_id=duty.id, answer=asked.answer,
             response_id=str(asked.response_id))
    record = audit_record(duty.event_id, "answered", who.agency, now, referral_id=uuid.UUID(duty.id),
                          agency=who.agency, detail=asked.answer)
    try:
        await ctx.publisher.publish(AUDIT.name, record.key, record.model_dump_json().encode())
    except BrokerUnavailable:
        log.warning("audit_write_failed", action="answered")
    return taken


def _accepted(taken: TakenAnswer) -> AnswerAccepted:
    return AnswerAccepted(response_id=taken.response_id, referral_id=taken.referral_id, agency=taken.agency,
                          answer=taken.answer, accepted_at=taken.accepted_at)


async def _sse(reader: AgencyReader, max_items: int | None, idle_exit: float | None,
               keepalive_s: float) -> AsyncIterator[str]:
    sent = 0
    last_write = time.monotonic()
    try:
        yield ": connected\n\n"
        async for item in reader.referrals(follow=idle_exit is None, idle_exit=idle_exit or 0.0,
                                           yield_idle=True):
            if item is None:
                # A comment now and then keeps proxies from closing an idle stream, and lets the
                # server notice a client that went away.
                if time.monotonic() - last_write >= keepalive_s:
                    yield ": keep-alive\n\n"
                    last_write = time.monotonic()
                continue
            yield f"id: {item.referral.referral_id}\nevent: referral\ndata: {item.referral.model_dump_json()}\n\n"
            last_write = time.monotonic()
            sent += 1
            if max_items is not None and sent >= max_items:
                break
        yield "event: end\ndata: {}\n\n"
    finally:
        await reader.__aexit__(None, None, None)


async def _read_body(request: Request, ctx: IntakeContext) -> bytes:
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        ctx.metrics.requests.labels("unsupported_media_type").inc()
        raise IntakeError(415, "unsupported_media_type", "send the body as application/json")
    limit = ctx.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        ctx.metrics.requests.labels("too_large").inc()
        raise IntakeError(413, "too_large", f"the body exceeds {limit} bytes")
    # Read in chunks: a chunked upload without a length must not grow past the limit in memory;
    # and within a deadline: a body that stops arriving must not hold the connection.
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(ctx.settings.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    ctx.metrics.requests.labels("too_large").inc()
                    raise IntakeError(413, "too_large", f"the body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError as exc:
        ctx.metrics.requests.labels("timeout").inc()
        raise IntakeError(408, "request_timeout", "the request body did not arrive in time",
                          headers={"Connection": "close"}) from exc
    return b"".join(chunks)


#: What each refusal of the trust boundary answers (fixed texts: nothing sent is repeated).
_REFUSALS = {
    "empty_message": (422, "the body is empty"),
    "too_large": (413, "the body is too large"),
    "invalid_json": (422, "the body is not standard JSON (RFC 8259)"),
    "too_deep": (422, "the body is nested too deeply"),
    "invalid_string": (422, "a string holds characters the bus does not take (controls, bidirectional overrides) "
                            "or is too long"),
    "invalid_event": (422, "the event is invalid"),
    UNSUPPORTED_VERSION: (422, "schema_version has a major version the bus does not read"),
}


def _validate(body: bytes, ctx: IntakeContext) -> Event:
    event = EVENT.decode(body)
    if isinstance(event, Refusal):
        ctx.metrics.requests.labels("too_large" if event.reason == "too_large" else "invalid").inc()
        status, message = _REFUSALS.get(event.reason, (422, "the event is invalid"))
        raise IntakeError(status, event.reason, message, fields=list(event.fields))
    return event


async def _claim(ctx: IntakeContext, event_id: str, who: Principal) -> str:
    try:
        return await ctx.claims.claim(event_id, who.agency)
    except BrokerUnavailable as exc:
        ctx.metrics.requests.labels("unavailable").inc()
        raise IntakeError(503, "broker_unavailable",
                          "the event was not stored; send it again later (your outbox will)",
                          headers={"Retry-After": str(ctx.settings.retry_after_s)}) from exc


def _conflict(ctx: IntakeContext) -> NoReturn:
    ctx.metrics.requests.labels("conflict").inc()
    raise IntakeError(409, "event_id_conflict", "this event_id was already used for a different event; use a new id")


def _check_same(original: Accepted, who: Principal, body: bytes, ctx: IntakeContext) -> None:
    if original.agency != who.agency or original.body_sha256 != body_digest(body):
        _conflict(ctx)


async def _publish(ctx: IntakeContext, who: Principal, event_id: str, case_id: uuid.UUID | None,
                   body: bytes) -> Accepted:
    # Keyed like the router expects: by case when known, so one case's events stay in order.
    key = str(case_id or event_id).encode()
    try:
        written = await ctx.publisher.publish(EVENTS.name, key, body)
    except BrokerUnavailable as exc:
        ctx.metrics.requests.labels("unavailable").inc()
        raise IntakeError(503, "broker_unavailable",
                          "the event was not stored; send it again later (your outbox will)",
                          headers={"Retry-After": str(ctx.settings.retry_after_s)}) from exc
    now = dt.datetime.now(dt.UTC)
    accepted = await ctx.claims.accepted(Accepted(event_id, who.agency, body_digest(body), now,
                                                  written.partition, written.offset))
    ctx.metrics.requests.labels("accepted").inc()
    ctx.metrics.published.labels(who.agency).inc()
    log.info("event_accepted", agency=who.agency, partition=written.partition, offset=written.offset)
    record = audit_record(event_id, "published", who.agency, now, agency=who.agency, detail=who.token_id)
    try:
        await ctx.publisher.publish(AUDIT.name, record.key, record.model_dump_json().encode())
    except BrokerUnavailable:
        # The event itself is safe on the broker; the missing audit line is logged with its id.
        log.warning("audit_write_failed", action="published")
    return accepted
