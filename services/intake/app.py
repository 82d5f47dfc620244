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
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from bus.credentials import Credentials
from bus.kafka.publisher import KafkaPublisher, Publisher
from bus.settings import KafkaSettings, StateSettings
from schemas.contract import openapi_schema
from schemas.errors import FieldError
from services.intake.agents import consume_receipts
from services.intake.errors import IntakeError
from services.intake.metrics import DeliveryStreamMetrics, IntakeMetrics
from services.intake.routes import IntakeContext, router
from services.intake.settings import IntakeSettings
from services.intake.store import IntakeStore

log = structlog.get_logger("intake")

#: The OpenAPI document checked into the repository (regenerate: `referral-bus intake --openapi`).
OPENAPI_PATH = Path(__file__).parent / "openapi.json"


def create_app(settings: IntakeSettings, kafka: KafkaSettings, state: StateSettings, *,
               publisher: Publisher | None = None, registry: CollectorRegistry | None = None,
               credentials: Credentials | None = None, store: IntakeStore | None = None) -> FastAPI:
    """The intake app. Fakes for the publisher, credentials and store are injected in tests."""
    registry = registry if registry is not None else CollectorRegistry()
    ctx = IntakeContext(
        settings=settings, kafka=kafka, state=state,
        credentials=credentials if credentials is not None else Credentials.load(settings.credentials),
        store=store if store is not None else IntakeStore(state.state_dir / "intake" / "intake.sqlite"),
        publisher=publisher if publisher is not None else KafkaPublisher(kafka, settings.publish_timeout_s),
        metrics=IntakeMetrics(registry), delivery_metrics=DeliveryStreamMetrics(registry),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = None
        if settings.consume_receipts and kafka.bootstrap_servers:
            task = asyncio.create_task(
                consume_receipts(kafka, ctx.store, f"intake.receipts.{settings.instance}"))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await ctx.publisher.close()

    app = FastAPI(title="referral-bus intake", version="1", lifespan=lifespan,
                  description="Agencies publish events; reporters get receipts; agencies read their referrals.")
    app.state.intake = ctx
    app.include_router(router)
    _install_error_handlers(app)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            # The request body is the event union, declared by the schemas package: add its models.
            defs = openapi_schema("Event")[1]
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Every refusal in one format, including FastAPI's and Starlette's own."""

    @app.exception_handler(IntakeError)
    async def intake_error(_: Request, exc: IntakeError) -> JSONResponse:
        response: JSONResponse = exc.response()
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [FieldError(field=".".join(str(p) for p in e["loc"]), reason=e["msg"]) for e in exc.errors()]
        response: JSONResponse = IntakeError(422, "invalid_request", "the request is invalid",
                                             fields=fields).response()
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response: JSONResponse = IntakeError(exc.status_code, code, str(exc.detail),
                                             headers=dict(exc.headers or {})).response()
        return response

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected_error", error=type(exc).__name__)
        response: JSONResponse = IntakeError(500, "internal_error", "unexpected error").response()
        return response


def openapi_document(app: FastAPI) -> str:
    """The OpenAPI document as checked in (stable key order, trailing newline)."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def run(host: str | None = None, port: int | None = None) -> None:
    """Entry point of `referral-bus intake`: serve until stopped."""
    import uvicorn

    settings, kafka, state = IntakeSettings(), KafkaSettings(), StateSettings()
    app = create_app(settings, kafka, state)
    log.info("intake_starting", host=host or settings.host, port=port or settings.port,
             bootstrap=kafka.bootstrap_servers)
    # uvicorn's access log prints request paths only (ids, never bodies); keep it, it's useful.
    uvicorn.run(app, host=host or settings.host, port=port if port is not None else settings.port,
                log_level="warning", access_log=False)
