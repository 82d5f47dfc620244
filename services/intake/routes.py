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

What follows validation (authorisation, ownership, idempotency, publishing) is `admission.py`,
shared with the gate that admits what agencies write on their own Kafka topics (`gate.py`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import structlog
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict

from bus.agency_reader import AgencyReader, AuditSink
from bus.boundary import ANSWER_REQUEST, EVENT, Refusal
from bus.credentials import Principal
from bus.throttle import Throttled
from schemas.answers import AnswerRequest
from schemas.contract import openapi_schema
from schemas.errors import FieldError
from schemas.events import Event
from schemas.receipts import Receipt
from schemas.wire import UNSUPPORTED_VERSION, Uuid
from services.intake.admission import Count, IntakeContext, admit_answer, admit_event
from services.intake.errors import IntakeError, error_responses
from services.intake.store import TakenAnswer

log = structlog.get_logger("intake")

_bearer = HTTPBearer(auto_error=False, description="An agency token: `rb_<id>_<secret>`.")


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
        admitted = await admit_event(ctx, who, event, body, _counter(ctx.metrics.requests))
        if admitted.repeat:
            response.headers["Idempotent-Replayed"] = "true"
        else:
            ctx.metrics.publish_seconds.observe(time.monotonic() - started)
        original = admitted.accepted
        return AcceptedResponse(event_id=event_id, agency=original.agency, accepted_at=original.accepted_at,
                                receipt_url=f"/v1/events/{event_id}")
    finally:
        structlog.contextvars.unbind_contextvars("event_id")


def _counter(counter: Counter) -> Count:
    def count(outcome: str) -> None:
        counter.labels(outcome).inc()
    return count


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
    admitted = await admit_answer(ctx, who, asked, referral_id, body, _counter(ctx.metrics.answers))
    if admitted.repeat:
        response.headers["Idempotent-Replayed"] = "true"
    return _accepted(admitted.taken)


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
