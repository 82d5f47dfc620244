"""The broadcast service: the worker, the CAP feed over HTTP, and its metrics, in one process.

The feed is served from the worker's own state, so it changes the moment a Cancel is recorded:
there is no second copy of the child's data to forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Generator, Iterable

import structlog
import uvicorn
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, start_http_server

from bus.settings import KafkaSettings
from schemas.broadcast import CAP_CONTENT_TYPE, CaseBroadcast
from services.broadcast import feed
from services.broadcast.agents import BroadcastWorker, Clock, utc_now
from services.broadcast.metrics import BroadcastMetrics
from services.broadcast.settings import BroadcastConfig, BroadcastSettings

log = structlog.get_logger("broadcast")


def make_http_app(cases: Callable[[], Iterable[CaseBroadcast]], config: BroadcastConfig,
                  clock: Clock = utc_now, public_base_url: str | None = None,
                  ready: Callable[[], bool] = lambda: True) -> FastAPI:
    """`/feed/cap.atom` (active alerts), `/cap/{identifier}.xml` (404 once not active), `/healthz`
    (503 until the state is restored and the worker consumes)."""
    http = FastAPI(title="referral-bus broadcast feed", docs_url=None, redoc_url=None, openapi_url=None)

    def base(request: Request) -> str:
        return public_base_url or str(request.base_url)

    @http.get("/feed/cap.atom")
    def atom(request: Request) -> Response:
        now = clock()
        body = feed.render(feed.served(cases(), config, now), base_url=base(request),
                           title=config.feed.title, now=now)
        # Short cache: a cancelled alert must leave aggregators quickly.
        return Response(body, media_type=feed.ATOM_CONTENT_TYPE, headers={"Cache-Control": "max-age=30"})

    @http.get("/cap/{identifier}.xml")
    def cap_document(identifier: str) -> Response:
        xml = feed.document(cases(), identifier, config, clock())
        if xml is None:
            return Response(status_code=404)
        return Response(xml.encode(), media_type=CAP_CONTENT_TYPE, headers={"Cache-Control": "max-age=30"})

    @http.get("/healthz")
    def healthz() -> Response:
        if not ready():
            return Response(b'{"status":"starting"}', status_code=503, media_type="application/json")
        return Response(b'{"status":"ok"}', media_type="application/json")

    return http


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGTERM/SIGINT and stops both
    the worker and the server (uvicorn would otherwise re-raise the signal after it exits)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(kafka: KafkaSettings, settings: BroadcastSettings, config: BroadcastConfig,
                registry: CollectorRegistry, stop: asyncio.Event) -> None:
    """Run the worker and (unless its port is 0) the feed server until `stop` is set."""
    worker = BroadcastWorker(kafka, settings, config, BroadcastMetrics(registry))
    tasks = [asyncio.create_task(worker.run(stop), name="broadcast-worker")]
    server: _Server | None = None
    if settings.http_port:
        http = make_http_app(lambda: tuple(worker.states.values()), config, ready=worker.ready.is_set)
        server = _Server(uvicorn.Config(http, host=settings.http_host, port=settings.http_port,
                                        log_level="warning", access_log=False, lifespan="off"))
        tasks.append(asyncio.create_task(server.serve(), name="broadcast-feed"))
    try:
        done, _ = await asyncio.wait([*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task in tasks and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        if server is not None:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)


def run() -> None:
    """Entry point of `referral-bus broadcast`."""
    kafka, settings = KafkaSettings(), BroadcastSettings()
    config = BroadcastConfig.load(settings.config)
    registry = CollectorRegistry()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    log.info("broadcast_starting", bootstrap=kafka.bootstrap_servers, feed_port=settings.http_port,
             metrics_port=settings.metrics_port, channels=list(config.channels))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(kafka, settings, config, registry, stop)

    asyncio.run(main())
