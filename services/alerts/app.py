"""The alerts service: a faust worker that tracks alerts and referrals, re-sends and escalates
unanswered alerts, and keeps missing-child cases. Run it as one active worker (see agents.py)."""

from __future__ import annotations

import logging
import sys

import faust
import structlog
from prometheus_client import CollectorRegistry, start_http_server

from bus.faust_app import make_app, run_worker
from bus.settings import KafkaSettings, StateSettings
from services.alerts.agents import wire
from services.alerts.cases import CasePolicy
from services.alerts.handlers import AlertsConfig, Handlers
from services.alerts.lag import LagExporter
from services.alerts.metrics import AlertsMetrics
from services.alerts.settings import AlertsSettings

log = structlog.get_logger("alerts")


def build(kafka: KafkaSettings, state: StateSettings, settings: AlertsSettings,
          registry: CollectorRegistry) -> tuple[faust.App, Handlers]:
    """The configured app; nothing connects until the worker starts.

    The tables' changelog topics are declared in the topic catalog and created with the other
    topics (`referral-bus topics create`), so the bus keeps `topic_allow_declare=False`: faust
    never creates a topic with settings of its own choosing.
    """
    metrics = AlertsMetrics(registry)
    config = AlertsConfig(deadlines=settings.deadlines(), policy=CasePolicy.load(settings.cases_file),
                          resends=settings.resends, timer_interval=settings.timer_interval,
                          park_seconds=settings.park_seconds)
    state.state_dir.mkdir(parents=True, exist_ok=True)
    app = make_app(settings.app_name, kafka, state.state_dir)
    alerts = wire(app, config, metrics, kafka)
    if settings.lag_interval:
        exporter = LagExporter(kafka, metrics, router_group=settings.router_group)
        app.timer(settings.lag_interval, name="consumer-lag")(exporter.scan)
    return app, alerts


def run() -> None:
    """Entry point of `referral-bus alerts`: serve metrics and run the worker until stopped."""
    kafka, state, settings = KafkaSettings(), StateSettings(), AlertsSettings()
    registry = CollectorRegistry()
    app, _ = build(kafka, state, settings, registry)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    log.info("alerts_starting", bootstrap=kafka.bootstrap_servers,
             metrics=f"{settings.metrics_host}:{settings.metrics_port}")
    # faust and aiokafka log through the standard library; structlog renders our own lines.
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    run_worker(app, loglevel=settings.log_level)
