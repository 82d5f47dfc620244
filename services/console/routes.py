"""The console's HTTP surface: pages, sign-in, the live board (server-sent events), answers, the
reporter's form. Every state-changing request needs the session cookie AND the session's CSRF
token in `X-CSRF-Token` (a page of another origin can send the cookie, never read the token),
and a JSON body (which a cross-origin form cannot send without a preflight)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bus.kafka.publisher import BrokerUnavailable, Publisher
from bus.presentation import receipt_view
from bus.throttle import AttemptGate
from rules.catalog import catalog
from schemas.alerts import Answer, ReferralResponse
from services.console.agents import BusReader, Change, Fanout
from services.console.answers import AnswerDesk
from services.console.auth import Session, Sessions, SignInRefused
from services.console.board import answers_allowed, may_close, snapshot, view, visible
from services.console.closing import Outcome, publish_resolution, resolution
from services.console.metrics import ConsoleMetrics
from services.console.reporting import FormConfig, IntakeGateway, IntakeUnavailable
from services.console.settings import ConsoleSettings

log = structlog.get_logger("console")

STATIC = Path(__file__).with_name("static")
COOKIE = "rb_console"


@dataclass
class ConsoleContext:
    settings: ConsoleSettings
    sessions: Sessions
    reader: BusReader
    fanout: Fanout
    desk: AnswerDesk
    #: Publishes the resolutions officers give (`closing.py`).
    closer: Publisher
    gateway: IntakeGateway
    form: FormConfig
    metrics: ConsoleMetrics
    #: Failed sign-ins per officer or token id and per client, one password check at a time.
    sign_in_gate: AttemptGate = field(default_factory=AttemptGate)


class ConsoleError(Exception):
    """A refusal in the bus's error shape: `{"error": {"code", "message", "fields"}}`."""

    def __init__(self, status: int, code: str, message: str, fields: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or []
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"code": self.code, "message": self.message, "fields": self.fields}},
                            status_code=self.status, headers={"Cache-Control": "no-store", **self.headers})


def context(request: Request) -> ConsoleContext:
    ctx: ConsoleContext = request.app.state.console
    return ctx


Ctx = Annotated[ConsoleContext, Depends(context)]


def session(request: Request, ctx: Ctx) -> Session:
    found = ctx.sessions.get(request.cookies.get(COOKIE))
    if found is None:
        raise ConsoleError(401, "unauthenticated", "sign in first (the session may have expired)")
    return found


def changing(request: Request, ctx: Ctx) -> Session:
    """A state-changing request: a live session, its CSRF token, and a JSON body."""
    found = session(request, ctx)
    if not ctx.sessions.csrf_ok(found, request.headers.get("x-csrf-token")):
        raise ConsoleError(403, "csrf", "missing or wrong X-CSRF-Token for this session")
    _json_body(request)
    return found


def _json_body(request: Request) -> None:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ConsoleError(415, "unsupported_media_type", "send JSON (application/json)")


Who = Annotated[Session, Depends(session)]
Changing = Annotated[Session, Depends(changing)]

router = APIRouter()


# -- pages -----------------------------------------------------------------------------------

def _page(name: str) -> FileResponse:
    # Pages are small and change with the bus's version: always revalidated.
    return FileResponse(STATIC / name, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "Content-Language": "zh-CN"})


@router.get("/", include_in_schema=False)
def home(request: Request, ctx: Ctx) -> Response:
    signed_in = ctx.sessions.get(request.cookies.get(COOKIE), touch=False) is not None
    return RedirectResponse("/board" if signed_in else "/login", status_code=303)


@router.get("/login", include_in_schema=False)
def login_page() -> Response:
    return _page("login.html")


@router.get("/board", include_in_schema=False)
def board_page(request: Request, ctx: Ctx) -> Response:
    if ctx.sessions.get(request.cookies.get(COOKIE), touch=False) is None:
        return RedirectResponse("/login?next=/board", status_code=303)
    return _page("board.html")


@router.get("/report", include_in_schema=False)
def report_page() -> Response:
    # Served to anyone: the page itself asks /api/me, and must load from the device's cache
    # when offline (the service worker), so it cannot depend on a redirect.
    return _page("report.html")


@router.get("/sw.js", include_in_schema=False)
def service_worker() -> Response:
    return FileResponse(STATIC / "sw.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


@router.get("/healthz", include_in_schema=False)
def healthz(ctx: Ctx) -> Response:
    if not ctx.reader.ready.is_set():
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ok"})


# -- sign-in ---------------------------------------------------------------------------------

class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    officer: str | None = Field(default=None, max_length=64)
    password: str | None = Field(default=None, max_length=256)
    token: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=40)


def _me(s: Session, ctx: ConsoleContext) -> dict[str, Any]:
    agency = catalog().agencies[s.agency]
    expires = min(s.created + ctx.sessions.ttl_s, s.last_seen + ctx.sessions.idle_s)
    return {"agency": s.agency, "agency_zh": agency.zh, "agency_en": agency.en, "officer": s.officer,
            "display": s.display, "via": s.via, "csrf": s.csrf, "can_report": s.token is not None,
            "jurisdictions": sorted(s.jurisdictions) if s.jurisdictions is not None else None,
            "expires_ms": int(expires * 1000)}


@router.post("/api/sign-in")
async def sign_in(request: Request, ctx: Ctx) -> Response:
    _json_body(request)
    try:
        body = SignIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise ConsoleError(422, "invalid_request", "officer and password, or token and name",
                           [{"field": ".".join(map(str, e["loc"])), "reason": e["msg"]} for e in exc.errors()]) from exc
    if body.officer and body.password:
        attempt = f"officer:{body.officer}"
        check = functools.partial(ctx.sessions.sign_in_officer, body.officer, body.password)
    elif body.token and body.name:
        attempt = f"token:{ctx.sessions.token_id(body.token)}"
        check = functools.partial(ctx.sessions.sign_in_token, body.token, body.name)
    else:
        raise ConsoleError(422, "invalid_request", "officer and password, or token and name")
    client = request.client.host if request.client is not None else "unknown"
    throttled = ctx.sign_in_gate.enter(attempt, client)
    if throttled is not None:
        ctx.metrics.sign_ins.labels("throttled").inc()
        raise ConsoleError(429, "too_many_attempts", "too many failed sign-ins for this name or from this "
                           "address; try again later", headers={"Retry-After": str(throttled.retry_after_s)})
    try:
        async with ctx.sign_in_gate.slot:
            s = await asyncio.to_thread(check)
    except SignInRefused as exc:
        ctx.metrics.sign_ins.labels("refused").inc()
        raise ConsoleError(401, "sign_in_refused", "unknown officer, wrong password or wrong token") from exc
    ctx.sign_in_gate.succeeded(attempt, client)
    ctx.metrics.sign_ins.labels("ok").inc()
    log.info("signed_in", agency=s.agency, via=s.via)
    response = JSONResponse(_me(s, ctx), headers={"Cache-Control": "no-store"})
    response.set_cookie(COOKIE, s.sid, httponly=True, samesite="strict", secure=ctx.settings.secure_cookies,
                        path="/", max_age=int(ctx.sessions.ttl_s))
    return response


@router.post("/api/sign-out")
def sign_out(request: Request, ctx: Ctx, who: Changing) -> Response:
    ctx.sessions.sign_out(who.sid)
    response = JSONResponse({"status": "signed_out"})
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/api/me")
def me(ctx: Ctx, who: Who) -> Response:
    return JSONResponse(_me(who, ctx), headers={"Cache-Control": "no-store"})


@router.get("/api/catalog")
def names(ctx: Ctx) -> Response:
    """Names in Chinese and English for everything a page shows by code (no personal data)."""
    cat = catalog()
    body = {
        "agencies": {c: {"zh": a.zh, "en": a.en or c} for c, a in cat.agencies.items()},
        "jurisdictions": {c: {"zh": j.zh, "en": c, "zone": j.timezone,
                              "offset": _offset(j.zone)} for c, j in cat.jurisdictions.items()},
        "urgency": {u: {"zh": cat.urgency_zh.get(u) or u, "en": u.replace("_", " ")} for u in cat.urgency_levels},
        "kinds": {k: {"zh": e.zh or k, "en": e.description} for k, e in cat.event_kinds.items()},
        "roles": {r: {"zh": v.zh, "en": r.replace("_", " ")} for r, v in cat.reporter_roles.items()},
        "form": {"kinds": list(ctx.form.kinds), "roles": list(ctx.form.roles),
                 "jurisdictions": [c for c, j in cat.jurisdictions.items() if j.in_seed]},
    }
    return JSONResponse(body, headers={"Cache-Control": "max-age=300"})


def _offset(zone: dt.tzinfo) -> str:
    offset = dt.datetime.now(zone).strftime("%z")
    return f"{offset[:3]}:{offset[3:]}"


# -- the board -------------------------------------------------------------------------------

def _views(ctx: ConsoleContext, who: Session, ids: set[str]) -> list[dict[str, Any]]:
    pending = ctx.desk.unrecorded()
    now = dt.datetime.now(dt.UTC)
    out = []
    for key in sorted(ids):
        state = ctx.reader.bus.states.get(key)
        if state is not None:
            out.append(view(state, ctx.reader.bus, who, pending, now, ctx.settings.recent_hours))
    return out


def _snapshot(ctx: ConsoleContext, who: Session) -> dict[str, Any]:
    return {"items": snapshot(ctx.reader.bus, who, ctx.desk.unrecorded(), dt.datetime.now(dt.UTC),
                              ctx.settings.recent_hours),
            "bus": {"ready": ctx.reader.ready.is_set(), "reachable": ctx.desk.reachable}}


@router.get("/api/board")
async def board(ctx: Ctx, who: Who) -> Response:
    """The board once (the live page uses the stream)."""
    return JSONResponse(_snapshot(ctx, who), headers={"Cache-Control": "no-store"})


@router.get("/api/board/stream")
async def board_stream(request: Request, ctx: Ctx, who: Who) -> StreamingResponse:
    """Server-sent events: `snapshot` once, then `view` for each card or row that changed, `status`
    with the keep-alives, `expired` when the session ends."""
    queue = ctx.fanout.subscribe()

    async def events() -> AsyncIterator[str]:
        try:
            yield ": connected\n\n"
            await ctx.reader.ready.wait()
            first_view = _snapshot(ctx, who)
            # What this board shows: an empty view (drop it) is sent only for these ids, so a
            # board never learns the id of something it was not shown.
            shown = {v["id"] for v in first_view["items"]}
            yield _sse("snapshot", first_view)
            while True:
                try:
                    first = await asyncio.wait_for(queue.get(), ctx.settings.keepalive_s)
                except TimeoutError:
                    if ctx.sessions.get(who.sid) is None:
                        yield _sse("expired", {})
                        return
                    yield _sse("status", {"ready": True, "reachable": ctx.desk.reachable})
                    continue
                if await request.is_disconnected():
                    return
                if ctx.sessions.get(who.sid) is None:
                    yield _sse("expired", {})
                    return
                changes = [first]
                while not queue.empty():
                    changes.append(queue.get_nowait())
                ids: set[str] = set()
                for change in changes:
                    ids |= _affected(ctx, change)
                views = []
                for v in _views(ctx, who, ids):
                    if v["card"] or v["row"]:
                        shown.add(v["id"])
                        views.append(v)
                    elif v["id"] in shown:
                        shown.discard(v["id"])
                        views.append(v)
                if views:
                    yield _sse("views", {"views": views, "reachable": ctx.desk.reachable})
        finally:
            ctx.fanout.unsubscribe(queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _affected(ctx: ConsoleContext, change: Change) -> set[str]:
    bus = ctx.reader.bus
    if change.what == "case":
        return bus.affected("case", change.key)
    if change.what == "broadcast":
        return bus.affected("broadcast", change.key)
    return bus.affected("state", change.key)


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


# -- answers ---------------------------------------------------------------------------------

class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    answer: Answer
    reason: str | None = Field(default=None, max_length=1000)
    note: str | None = Field(default=None, max_length=4000)


@router.post("/api/answers", status_code=202)
async def answer(request: Request, ctx: Ctx, who: Changing) -> Response:
    """Answer an alert or referral the agency was addressed or escalated to. 202 with `outcome`:
    `published` (the bus has it; the card shows it once `alerts.states` records it), `queued`
    (the bus is unreachable: kept and sent when it returns) or `refused`."""
    try:
        body = AnswerRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise ConsoleError(422, "invalid_answer", "the answer is invalid", _fields(exc)) from exc
    state = ctx.reader.bus.states.get(str(body.id))
    if state is None or not visible(state, who):
        # The same answer for "unknown" and "not yours": nobody learns of another agency's work.
        raise ConsoleError(404, "not_found", "no alert or referral with this id for your agency")
    if body.answer not in answers_allowed(state.status):
        raise ConsoleError(409, "not_answerable", f"this item is {state.status}: {body.answer} changes nothing",
                           [{"field": "answer", "reason": f"not allowed when {state.status}"}])
    try:
        response = ReferralResponse(referral_id=state.id, answer=body.answer, agency=who.agency,
                                    officer=who.officer, reason=_text(body.reason), note=_text(body.note),
                                    exercise=state.exercise)
    except ValidationError as exc:
        raise ConsoleError(422, "invalid_answer", "the answer is invalid", _fields(exc)) from exc
    outcome: Literal["published", "queued", "refused"] = await ctx.desk.give(response)  # type: ignore[assignment]
    log.info("answer_given", referral_id=str(state.id), answer=body.answer, agency=who.agency, outcome=outcome)
    ctx.fanout.publish(Change("pending", str(state.id)))
    return JSONResponse({"response_id": str(response.response_id), "outcome": outcome}, status_code=202)


class CloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    note: str | None = Field(default=None, max_length=1000)


@router.post("/api/cases/{case_id}/resolve", status_code=202)
async def close_case(case_id: uuid.UUID, request: Request, ctx: Ctx, who: Changing) -> Response:
    """Close a case the desk sees: the police's resolution, published on the bus. 202 once the
    broker has it (the card shows the case closed once `cases.changes` records it); 404 for a case
    the desk does not see, 403 for an agency that is not the police, 409 for a closed case, 503
    while the bus is unreachable (nothing is kept: the officer tries again)."""
    try:
        body = CloseRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise ConsoleError(422, "invalid_request", "the resolution is invalid", _fields(exc)) from exc
    case = ctx.reader.bus.cases.get(str(case_id))
    if case is None or not any(visible(s, who) for s in ctx.reader.bus.of_case(case_id)):
        raise ConsoleError(404, "not_found", "no case with this id for your agency")
    if case.status != "open":
        raise ConsoleError(409, "already_closed", "this case is already closed")
    if not may_close(case, who):
        raise ConsoleError(403, "not_police", "only the police close a case")
    event = resolution(case, who.agency, who.officer, body.outcome, _text(body.note), dt.datetime.now(dt.UTC))
    try:
        await publish_resolution(ctx.closer, event, who.agency)
    except BrokerUnavailable as exc:
        await ctx.closer.close()  # a producer that failed once may hold a dead connection
        ctx.metrics.case_closings.labels("unavailable").inc()
        raise ConsoleError(503, "bus_unreachable", "the bus is unreachable: the case is not closed yet, try again") \
            from exc
    ctx.metrics.case_closings.labels("published").inc()
    log.info("case_resolution_given", agency=who.agency, outcome=body.outcome)
    return JSONResponse({"event_id": str(event.event_id), "outcome": "published"}, status_code=202)


def _text(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def _fields(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for e in exc.errors(include_input=False):
        loc = ".".join(str(p) for p in e["loc"]) or ("reason" if "reason" in e["msg"] else
                                                     "note" if "note" in e["msg"] else "(answer)")
        out.append({"field": loc, "reason": e["msg"].removeprefix("Value error, ")})
    return out


# -- the reporter's form ---------------------------------------------------------------------

def _reporter(who: Session) -> str:
    if who.token is None:
        raise ConsoleError(403, "token_required", "sign in with your agency token to send reports")
    return who.token


@router.post("/api/reports")
async def send_report(request: Request, ctx: Ctx, who: Changing) -> Response:
    """The event, to the intake with the reporter's token; the intake's answer as it is (202, a
    4xx naming the fields, 503 when the broker is away). 502 when the intake does not answer."""
    body = await request.body()
    if len(body) > 64 * 1024:
        raise ConsoleError(413, "too_large", "the report is too large")
    try:
        status, answer_body = await ctx.gateway.publish(_reporter(who), body)
    except IntakeUnavailable as exc:
        raise ConsoleError(502, "intake_unavailable", "the intake did not answer; the report stays on the device") \
            from exc
    return JSONResponse(answer_body, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/api/reports/{event_id}")
async def report_receipt(event_id: uuid.UUID, ctx: Ctx, who: Who) -> Response:
    """The receipt as the reporter reads it (see `reporting.receipt_view`)."""
    try:
        status, body = await ctx.gateway.receipt(_reporter(who), str(event_id))
    except IntakeUnavailable as exc:
        raise ConsoleError(502, "intake_unavailable", "the intake did not answer; try again") from exc
    if status != 200:
        return JSONResponse(body, status_code=status)
    return JSONResponse(receipt_view(body), headers={"Cache-Control": "no-store"})
