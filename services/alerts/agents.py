"""The alerts service's wiring: its tables, one agent per input topic and two timers, each calling
a handler (`handlers.py`). Nothing here decides anything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust

from bus.boundary import Position
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
        await tables.restore(kafka, metrics)

    app.task(restore)

    def agent(topics: tuple[str, ...], name: str, step: str, handler: Callable[..., Awaitable[Any]],
              *, dated: bool = False) -> None:
        source = app.topic(*topics, key_serializer="raw", value_serializer="raw")

        async def run(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            # One message at a time: faust commits an offset only after the loop moved past it
            # and the producer flushed, so a crash replays the message (handlers are idempotent).
            # Each handler runs under the last resort (`Handlers.guard`): a bug meets one message,
            # not the worker.
            async for event in stream.events():
                await tables.restored.wait()
                if dated:
                    # An answer is dated by its record, written by the bus's own producer.
                    message = event.message
                    await handlers.guard(step, handler, event.value, message.timestamp,
                                         Position(message.topic, message.partition, message.offset))
                else:
                    await handlers.guard(step, handler, event.value)
                yield None

        app.agent(source, name=name)(run)

    agent((POLICE_ALERTS.name,), "track-alerts", "alert", handlers.on_alert)
    agent(referral_topics(), "track-referrals", "referral", handlers.on_referral)
    agent(kafka.answer_topics, "apply-responses", "answer", handlers.on_response, dated=True)
    agent((ESCALATIONS.name,), "apply-escalations", "escalation", handlers.on_escalation)
    agent((EVENTS.name,), "follow-cases", "event", handlers.on_event)

    async def deadlines() -> None:
        await handlers.guard("deadlines", handlers.scan_deadlines)

    async def gauges() -> None:
        await handlers.guard("gauges", handlers.update_gauges)

    async def parked() -> None:
        await handlers.guard("parked", handlers.expire_parked)

    app.timer(config.timer_interval, name="scan-deadlines")(deadlines)
    app.timer(2.0, name="alert-gauges")(gauges)
    # Often enough that an answer waits about its window, never more than a few seconds longer.
    app.timer(max(0.2, min(5.0, config.park_seconds / 10)), name="expire-parked")(parked)
    return handlers
