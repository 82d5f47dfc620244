"""The intake service: FastAPI on uvicorn. `create_app` builds it; `run` is `referral-bus intake`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, start_http_server
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.boundary import MAX_FIELDS, fault, reason_for
from bus.credentials import Credentials
from bus.kafka.publisher import KafkaPublisher, Publisher
from bus.settings import KafkaSettings, StateSettings
from schemas.contract import openapi_schema
from schemas.errors import FieldError
from services.intake.admission import IntakeContext
from services.intake.agents import consume_receipts
from services.intake.auth import Authenticator
from services.intake.claims import Claims, LocalClaims, LogClaims
from services.intake.duties import Duties, DutiesFollower, StoredDuties
from services.intake.errors import IntakeError
from services.intake.gate import Gate
from services.intake.http import protocol_class
from services.intake.metrics import DeliveryStreamMetrics, IntakeMetrics
from services.intake.routes import router
from services.intake.settings import IntakeSettings
from services.intake.store import IntakeStore

log = structlog.get_logger("intake")

#: The OpenAPI document checked into the repository (regenerate: `referral-bus intake --openapi`).
OPENAPI_PATH = Path(__file__).parent / "openapi.json"


def create_app(settings: IntakeSettings, kafka: KafkaSettings, state: StateSettings, *,
               publisher: Publisher | None = None, registry: CollectorRegistry | None = None,
               credentials: Credentials | None = None, store: IntakeStore | None = None,
               claims: Claims | None = None, duties: Duties | None = None) -> FastAPI:
    """The intake app. Fakes for the publisher, credentials, store, claims and duties are injected
    in tests.

    Its metrics are served by `run()` on a listener of their own (`metrics_host:metrics_port`),
    never on the API's port.
    """
    registry = registry if registry is not None else CollectorRegistry()
    credentials = credentials if credentials is not None else Credentials.load(settings.credentials)
    store = store if store is not None else IntakeStore(state.state_dir / "intake" / "intake.sqlite")
    publisher = publisher if publisher is not None else KafkaPublisher(kafka, settings.publish_timeout_s)
    metrics = IntakeMetrics(registry)
    follower: LogClaims | None = None
    if claims is None and settings.share_claims and kafka.bootstrap_servers:
        follower = LogClaims(kafka, publisher, store, settings.instance, settings.publish_timeout_s, metrics)
    states: DutiesFollower | None = None
    if duties is None and settings.follow_states and kafka.bootstrap_servers:
        states = DutiesFollower(kafka, store, metrics)
    ctx = IntakeContext(
        settings=settings, kafka=kafka, state=state, credentials=credentials,
        auth=Authenticator(credentials, max_failures=settings.auth_max_failures,
                           max_client_failures=settings.auth_max_failures_per_client,
                           window_s=settings.auth_window_s),
        claims=claims if claims is not None else (follower or LocalClaims(store)),
        store=store, publisher=publisher, metrics=metrics, delivery_metrics=DeliveryStreamMetrics(registry),
        duties=duties if duties is not None else (states or StoredDuties(store)),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if settings.consume_receipts and kafka.bootstrap_servers:
            tasks.append(asyncio.create_task(
                consume_receipts(kafka, ctx.store, f"intake.receipts.{settings.instance}", metrics)))
        if follower is not None:
            tasks.append(asyncio.create_task(follower.follow()))
        if states is not None:
            tasks.append(asyncio.create_task(states.follow()))
        if settings.gate and kafka.bootstrap_servers:
            tasks.append(asyncio.create_task(Gate(ctx).run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await ctx.publisher.close()

    app = FastAPI(title="referral-bus intake", version="1", lifespan=lifespan,
                  description="Agencies publish events; reporters get receipts; agencies read their referrals.")
    app.state.intake = ctx
    app.include_router(router)
    _install_error_handlers(app, metrics)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            # The request bodies are the published schemas (the event union, an answer): add the
            # models they refer to.
            defs = openapi_schema("Event")[1] | openapi_schema("AnswerRequest")[1]
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


#: Statuses Starlette raises itself, with the intake's code and a fixed message for each.
_HTTP_ERRORS = {
    400: ("bad_request", "the request could not be read"),
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "this method is not allowed here"),
    413: ("too_large", "the request is too large"),
    415: ("unsupported_media_type", "unsupported media type"),
}


def _install_error_handlers(app: FastAPI, metrics: IntakeMetrics) -> None:
    """Every refusal in one format, including FastAPI's and Starlette's own; none repeats input."""

    @app.exception_handler(IntakeError)
    async def intake_error(_: Request, exc: IntakeError) -> JSONResponse:
        response: JSONResponse = exc.response()
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Path and query parameters: the locations are the routes' own parameter names, and
        # the reasons fixed texts (pydantic's message for a bad UUID quotes the character).
        fields = [FieldError(field=".".join(str(p) for p in e["loc"]), reason=reason_for(e["type"], e["msg"]))
                  for e in exc.errors()][:MAX_FIELDS]
        response: JSONResponse = IntakeError(422, "invalid_request", "the request is invalid",
                                             fields=fields).response()
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = _HTTP_ERRORS.get(exc.status_code, ("http_error", "the request was refused"))
        response: JSONResponse = IntakeError(exc.status_code, code, message,
                                             headers=dict(exc.headers or {})).response()
        return response

    app.add_middleware(LastResort, metrics=metrics)


class LastResort:
    """An unexpected exception in a route is a 500 in the error shape, logged by type and code
    location only. Starlette's own handler for it would also re-raise it to uvicorn, which logs
    the traceback (on main one quoted the end of a report's description)."""

    def __init__(self, app: ASGIApp, metrics: IntakeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            fault("http", exc, path=_route_of(scope))
            self.metrics.internal_errors.labels("http").inc()
            if not started:
                response = IntakeError(500, "internal_error", "unexpected error").response()
                await response(scope, receive, send)


def _route_of(scope: Scope) -> str:
    """The route template that matched (`/v1/events/{event_id}`), never the path sent."""
    route = scope.get("route")
    return str(getattr(route, "path", "(unmatched)"))


def openapi_document(app: FastAPI) -> str:
    """The OpenAPI document as checked in (stable key order, trailing newline)."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def run(host: str | None = None, port: int | None = None) -> None:
    """Entry point of `referral-bus intake`: serve until stopped."""
    import uvicorn

    settings, kafka, state = IntakeSettings(), KafkaSettings(), StateSettings()
    registry = CollectorRegistry()
    app = create_app(settings, kafka, state, registry=registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    log.info("intake_starting", host=host or settings.host, port=port or settings.port,
             bootstrap=kafka.bootstrap_servers, metrics=f"{settings.metrics_host}:{settings.metrics_port}")
    uvicorn.run(app, host=host or settings.host, port=port if port is not None else settings.port,
                log_level="warning", access_log=False,
                http=protocol_class(settings.request_head_timeout_s),
                # A request head (request line and headers) larger than this is refused (400).
                h11_max_incomplete_event_size=16 * 1024)
