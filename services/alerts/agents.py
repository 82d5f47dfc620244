"""The alerts service's wiring: its tables, one agent per input topic and two timers, each calling
a handler (`handlers.py`). Nothing here decides anything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import faust

from bus.faust_app import BusApp
from bus.settings import KafkaSettings
from services.alerts.handlers import AlertsConfig, Handlers
from services.alerts.metrics import AlertsMetrics
from services.alerts.tables import FaustSender, Tables
from topics.catalog import ESCALATIONS, EVENTS, POLICE_ALERTS, all_topics


def referral_topics() -> tuple[str, ...]:
    """Every agency's referral topic (the catalog's current agencies)."""
    return tuple(t.name for t in all_topics() if t.value == "Referral")


def wire(app: BusApp, config: AlertsConfig, metrics: AlertsMetrics, kafka: KafkaSettings) -> Handlers:
    """Register the tables, agents and timers of the alerts service on `app`."""
    tables = Tables(app)
    handlers = Handlers(tables, FaustSender(app), config, metrics, ready=tables.ready)

    async def restore() -> None:
        await tables.restore(kafka)

    app.task(restore)

    def agent(topics: tuple[str, ...], name: str, handler: Callable[[bytes | None], Awaitable[None]]) -> None:
        source = app.topic(*topics, key_serializer="raw", value_serializer="raw")

        async def run(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            # One message at a time: faust commits an offset only after the loop moved past it
            # and the producer flushed, so a crash replays the message (handlers are idempotent).
            async for value in stream:
                await tables.restored.wait()
                await handler(value)
                yield None

        app.agent(source, name=name)(run)

    agent((POLICE_ALERTS.name,), "track-alerts", handlers.on_alert)
    agent(referral_topics(), "track-referrals", handlers.on_referral)
    agent(kafka.answer_topics, "apply-responses", handlers.on_response)
    agent((ESCALATIONS.name,), "apply-escalations", handlers.on_escalation)
    agent((EVENTS.name,), "follow-cases", handlers.on_event)

    async def deadlines() -> None:
        await handlers.scan_deadlines()

    async def gauges() -> None:
        handlers.update_gauges()

    app.timer(config.timer_interval, name="scan-deadlines")(deadlines)
    app.timer(2.0, name="alert-gauges")(gauges)
    return handlers
