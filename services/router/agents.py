"""The router agent: wires the inbound topic to `Router.handle` and sends what it returns."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import faust
import structlog
from referral_bus.services.router.handling import Position, Refused, Router, describe_refusal
from referral_bus.services.router.metrics import RouterMetrics
from referral_bus.topics.catalog import EVENTS

log = structlog.get_logger("router")


def wire(app: faust.App, router: Router, metrics: RouterMetrics) -> None:
    """Register the routing agent on `app`."""
    inbound = app.topic(EVENTS.name, key_serializer="raw", value_serializer="raw")
    outbound: dict[str, Any] = {}

    def topic(name: str) -> Any:
        if name not in outbound:
            outbound[name] = app.topic(name, key_serializer="raw", value_serializer="raw")
        return outbound[name]

    async def route_events(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        # One event at a time: faust acks an event when the loop moves on, and commits only after
        # flushing the producer, so a referral is on its topic before its input offset is committed.
        async for delivery in stream.events():
            message = delivery.message
            outcome = router.handle(message.value, Position(message.topic, message.partition, message.offset))
            for out in outcome.messages:
                await topic(out.topic).send(key=out.key, value=out.value)
            if isinstance(outcome, Refused):
                metrics.dead_letters.labels(outcome.dead_letter.reason).inc()
                log.warning("dead_letter", reason=describe_refusal(outcome.dead_letter),
                            event_id=outcome.dead_letter.event_id, offset=message.offset)
            else:
                event = outcome.event
                metrics.events_received.labels(event.kind, event.jurisdiction,
                                               event.reporter.agency or "public").inc()
                for r in outcome.referrals:
                    metrics.referrals.labels(r.agency, r.role).inc()
                    if r.rule_id.endswith(".unrouted"):
                        metrics.unrouted.labels(event.jurisdiction).inc()
                metrics.routing_seconds.observe(max(0.0, time.time() - event.reported_at.timestamp()))
            yield None

    app.agent(inbound, name="route-events")(route_events)
