"""The router agent: wires the inbound topic to `Router.handle` and sends what it returns."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import faust
import structlog
from mode import CrashingSupervisor

from referral_bus.faust_app import BusApp
from referral_bus.rules.engine import is_unrouted
from referral_bus.services.router.handling import Position, Refused, Routed, Router, describe_refusal
from referral_bus.services.router.metrics import RouterMetrics
from referral_bus.topics.catalog import EVENTS

log = structlog.get_logger("router")

#: Events handled per batch, and how long a partial batch may wait (seconds).
BATCH_MAX = 500
BATCH_WITHIN = 0.005


def wire(app: BusApp, router: Router, metrics: RouterMetrics) -> None:
    """Register the routing agent on `app`."""
    inbound = app.topic(EVENTS.name, key_serializer="raw", value_serializer="raw")

    async def route_events(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        # faust acks a batch's events only when the loop asks for the next batch, and flushes the
        # producer before committing; sends go straight to the producer (no per-send await of the
        # broker), whose delivery guard stops a commit past a failed one. At-least-once.
        midway = False  # a batch taken and not all of its outputs handed to the producer yet
        try:
            # faust's StreamT declares no take_events; its Stream, which agents get, has it.
            async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
                midway = True
                tally = Tally()
                for delivery in batch:
                    message = delivery.message
                    outcome = router.handle(message.value, Position(message.topic, message.partition, message.offset))
                    for out in outcome.messages:
                        await app.producer.send(out.topic, out.key, out.value, None, None, None)
                    tally.observe(outcome, metrics, message.offset)
                midway = False
                tally.flush(metrics)
                app.delivery_guard.raise_if_failed()
                yield None
        except Exception as exc:
            # A send raised (no room in the producer's buffer within the request timeout, no
            # metadata, a message too large) or a delivery failed: this batch stopped midway.
            # faust would restart the agent and, closing the batch, ack its events, unsent outputs
            # and all; the tripped guard refuses every later commit of this process, and the
            # crashing supervisor stops the worker (exit code 1) instead of restarting the agent.
            app.delivery_guard.trip(exc)
            raise
        except asyncio.CancelledError as exc:
            # Stopped (SIGTERM) while a send waited for room in the producer's buffer: the batch's
            # events would be acked by the shutdown's last commit, their remaining outputs never
            # sent. Between batches nothing is owed and the shutdown commits as usual.
            if midway:
                app.delivery_guard.trip(exc)
            raise

    app.agent(inbound, name="route-events", supervisor_strategy=CrashingSupervisor)(route_events)


class Tally:
    """A batch's outcomes, counted into the metrics once per label set rather than once per event."""

    def __init__(self) -> None:
        self.events: Counter[tuple[str, str, str]] = Counter()
        self.referrals: Counter[tuple[str, str]] = Counter()
        self.unrouted: Counter[str] = Counter()

    def observe(self, outcome: Routed | Refused, metrics: RouterMetrics, offset: int) -> None:
        """Count the outcome; log ids and reasons only, never the report's contents."""
        if isinstance(outcome, Refused):
            metrics.dead_letters.labels(outcome.dead_letter.reason).inc()
            log.warning("dead_letter", reason=describe_refusal(outcome.dead_letter),
                        event_id=outcome.dead_letter.event_id, offset=offset)
            return
        event = outcome.event
        self.events[(event.kind, event.jurisdiction, event.reporter.agency or "public")] += 1
        for r in outcome.referrals:
            self.referrals[(r.agency, r.role)] += 1
            if is_unrouted(r):
                self.unrouted[event.jurisdiction] += 1
        metrics.routing_seconds.observe(max(0.0, time.time() - event.reported_at.timestamp()))

    def flush(self, metrics: RouterMetrics) -> None:
        for labels, n in self.events.items():
            metrics.events_received.labels(*labels).inc(n)
        for labels2, n in self.referrals.items():
            metrics.referrals.labels(*labels2).inc(n)
        for jurisdiction, n in self.unrouted.items():
            metrics.unrouted.labels(jurisdiction).inc(n)
