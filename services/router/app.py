"""The router service: a faust worker that routes every inbound event by its jurisdiction's plan."""

from __future__ import annotations

import logging
import sys

import faust
import structlog
from prometheus_client import CollectorRegistry, start_http_server

from bus.faust_app import make_app, run_worker
from bus.settings import KafkaSettings, StateSettings
from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from services.router.agents import wire
from services.router.handling import Router
from services.router.metrics import RouterMetrics
from services.router.outputs import emitters
from services.router.settings import RouterSettings

log = structlog.get_logger("router")

#: The router's producer linger (seconds): none (`build`).
ROUTER_PRODUCER_LINGER_S = 0.0


def build(kafka: KafkaSettings, state: StateSettings, settings: RouterSettings,
          registry: CollectorRegistry) -> faust.App:
    """The configured app with its agent; nothing connects until the worker starts."""
    book = load_rulebook()
    deadlines = Deadlines.load()
    # The router reads one topic and computes little per event: its consumer shares the loop
    # (no thread hand-offs per fetch). Its producer does not linger: the agent sends all of a
    # fetched batch's outputs without yielding, so they leave in one produce request anyway, and
    # the linger only added a timer, a wake-up and its wait to every batch (docs/benchmarks.md).
    # Its fetches take the lean path: an empty round trip at about half aiokafka's CPU.
    app = make_app(settings.app_name, kafka, state.state_dir, consumer_in_worker_loop=True,
                   lean_fetch=True, producer_linger=ROUTER_PRODUCER_LINGER_S)
    wire(app, Router(book, deadlines, emitters(settings.alert_deadlines(deadlines))), RouterMetrics(registry))
    return app


def run() -> None:
    """Entry point of `referral-bus router`: serve metrics and run the worker until stopped."""
    kafka, state, settings = KafkaSettings(), StateSettings(), RouterSettings()
    registry = CollectorRegistry()
    app = build(kafka, state, settings, registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    log.info("router_starting", bootstrap=kafka.bootstrap_servers, metrics_port=settings.metrics_port)
    # faust and aiokafka log through the standard library; structlog renders our own lines.
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    run_worker(app, loglevel=settings.log_level)
