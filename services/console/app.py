"""The console service: FastAPI on uvicorn (HTTP 8104) and its metrics (9104).

One process holds the bus reader (the fan-out to every open board), the answer outbox and its
sender, the sessions, and the pages. `create_app` builds it (fakes injected in tests); `run` is
`referral-bus console`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, start_http_server
from starlette.exceptions import HTTPException as StarletteHTTPException

from bus.credentials import Credentials
from bus.kafka.publisher import KafkaPublisher, Publisher
from bus.settings import KafkaSettings, StateSettings
from bus.throttle import AttemptGate
from services.console.agents import BusReader, Change, Fanout
from services.console.answers import AnswerDesk, AnswerSink, HttpAnswerSink, KafkaAnswerSink
from services.console.auth import Sessions, load_officers
from services.console.metrics import ConsoleMetrics
from services.console.reporting import FormConfig, IntakeGateway
from services.console.routes import STATIC, ConsoleContext, ConsoleError, router
from services.console.session_file import SessionFile
from services.console.settings import ConsoleSettings

log = structlog.get_logger("console")


def answer_sink(settings: ConsoleSettings, kafka: KafkaSettings) -> AnswerSink:
    """Straight onto the answers topic, or the bus's HTTP answer endpoint when configured."""
    if settings.answer_url:
        return HttpAnswerSink(settings.answer_url, settings.answer_token, settings.publish_timeout_s)
    return KafkaAnswerSink(kafka, settings.publish_timeout_s)


def create_app(settings: ConsoleSettings, kafka: KafkaSettings, state: StateSettings, *,
               registry: CollectorRegistry | None = None, sink: AnswerSink | None = None,
               gateway: IntakeGateway | None = None, closer: Publisher | None = None,
               read_bus: bool = True) -> FastAPI:
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ConsoleMetrics(registry)
    fanout = Fanout(metrics)
    desk = AnswerDesk(state.state_dir / "console" / "answers.sqlite", sink or answer_sink(settings, kafka), metrics,
                      on_change=lambda referral_id: fanout.publish(Change("pending", referral_id)),
                      retry_max_s=settings.retry_max_s)
    reader = BusReader(kafka, fanout, metrics, on_refusal=desk.refused)
    tokens = Credentials.load(settings.agency_credentials) if settings.agency_credentials.exists() else None
    # Officers' sessions survive a restart; an unusable file leaves them in memory (session_file.py).
    store = SessionFile.open(state.state_dir / "console" / "sessions.sqlite",
                             lambda stage: metrics.session_file_errors.labels(stage).inc())
    ctx = ConsoleContext(
        settings=settings,
        sessions=Sessions(load_officers(settings.officers), tokens, ttl_s=settings.session_hours * 3600,
                          idle_s=settings.idle_minutes * 60, store=store),
        reader=reader, fanout=fanout, desk=desk, closer=closer or KafkaPublisher(kafka, settings.publish_timeout_s),
        gateway=gateway or IntakeGateway(settings.intake_url), form=FormConfig.load(settings.form),
        metrics=metrics,
        sign_in_gate=AttemptGate(max_failures=settings.sign_in_max_failures,
                                 max_client_failures=settings.sign_in_max_failures_per_client,
                                 window_s=settings.sign_in_window_s))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(desk.run(stop), name="console-answers")]
        if read_bus and kafka.bootstrap_servers:
            tasks.append(asyncio.create_task(reader.run(stop), name="console-reader"))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await desk.close()
            ctx.sessions.close()
            await ctx.closer.close()
            await ctx.gateway.close()

    app = FastAPI(title="referral-bus console", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.console = ctx
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(ConsoleError)
    async def console_error(_: Request, exc: ConsoleError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()]
        return ConsoleError(422, "invalid_request", "the request is invalid", fields).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ConsoleError(exc.status_code, code, str(exc.detail)).response()

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        # Everything comes from the bus itself: no CDN, no inline script, no framing.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return app


def run(host: str | None = None, port: int | None = None) -> None:
    """Entry point of `referral-bus console`: serve until stopped."""
    import uvicorn

    settings, kafka, state = ConsoleSettings(), KafkaSettings(), StateSettings()
    # aiokafka logs every failed reconnect while the broker is away; the console says it once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    registry = CollectorRegistry()
    app = create_app(settings, kafka, state, registry=registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    log.info("console_starting", host=host or settings.host, port=port or settings.port,
             metrics_port=settings.metrics_port, bootstrap=kafka.bootstrap_servers,
             answers="http" if settings.answer_url else "topic")
    # Open boards are endless streams: on SIGTERM they are cut after a few seconds (the pages
    # reconnect to the next console) rather than holding the shutdown.
    uvicorn.run(app, host=host or settings.host, port=port if port is not None else settings.port,
                log_level="warning", access_log=False, timeout_graceful_shutdown=5)
