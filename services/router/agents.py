"""The router agent: wires the inbound topic to `Router.handle` and sends what it returns."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import faust
import structlog
from faust.types import Message
from mode import CrashingSupervisor
from prometheus_client.metrics import MetricWrapperBase

from bus.faust_app import BusApp
from bus.kafka.batches import fetched_batches, read_in_batches
from bus.upstream.lean_produce import send_outputs
from rules.engine import is_unrouted
from services.router.handling import Position, Refused, Routed, Router, describe_refusal
from services.router.metrics import RouterMetrics
from topics.catalog import EVENTS

log = structlog.get_logger("router")


def wire(app: BusApp, router: Router, metrics: RouterMetrics) -> None:
    """Register the routing agent on `app`."""
    inbound = read_in_batches(app, EVENTS.name)

    async def route_events(stream: faust.StreamT[list[Message]]) -> None:
        # A batch is acked only when the loop asks for the next one: one that stops midway (a
        # send raised, the worker was stopped while a send waited for room in the producer's
        # buffer) is never acked, so no commit passes it, and the crashing supervisor stops the
        # worker instead of restarting the agent. Sends go straight to the producer's batches
        # (`send_outputs`: one future per partition batch, not per message), with no per-send
        # wait for the broker: faust flushes the producer before each commit, and the delivery
        # guard refuses a commit past a failed delivery. At-least-once.
        # The agent yields nothing: faust would take each yield for a reply to send or a sink to
        # feed (and log it), work done for every batch, for nothing.
        tally = Tally()
        async for batch in fetched_batches(app, stream):
            for message in batch:
                outcome = router.handle(message.value, Position(message.topic, message.partition, message.offset))
                await send_outputs(app, outcome.messages)
                tally.observe(outcome, metrics, message.offset)
            tally.flush(metrics)
            app.delivery_guard.raise_if_failed()

    app.agent(inbound, name="route-events", supervisor_strategy=CrashingSupervisor)(route_events)


class Tally:
    """A batch's outcomes, counted into the metrics once per label set rather than once per event.

    One per agent, emptied by each flush. It keeps the metrics' children it has counted into:
    prometheus_client's `labels()` takes a lock and converts and checks every label value each
    time, several times per event when events come one per batch (live traffic).
    """

    def __init__(self) -> None:
        self.events: Counter[tuple[str, str, str]] = Counter()
        self.referrals: Counter[tuple[str, str]] = Counter()
        self.unrouted: Counter[tuple[str]] = Counter()
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}

    def observe(self, outcome: Routed | Refused, metrics: RouterMetrics, offset: int) -> None:
        """Count the outcome; log ids and reasons only, never the report's contents."""
        if isinstance(outcome, Refused):
            metrics.dead_letters.labels(outcome.dead_letter.reason).inc()
            if outcome.dead_letter.reason == "internal_error":
                metrics.internal_errors.labels("route").inc()
            log.warning("dead_letter", reason=describe_refusal(outcome.dead_letter),
                        event_id=outcome.dead_letter.event_id, partition=outcome.dead_letter.partition,
                        offset=offset)
            return
        event = outcome.event
        self.events[(event.kind, event.jurisdiction, event.reporter.agency or "public")] += 1
        for written in outcome.written:
            r = written.duty  # agency, role and rule: the duty's own fields
            self.referrals[(r.agency, r.role)] += 1
            if is_unrouted(r):
                self.unrouted[(event.jurisdiction,)] += 1
        metrics.routing_seconds.observe(max(0.0, time.time() - event.reported_at.timestamp()))

    def flush(self, metrics: RouterMetrics) -> None:
        """Add what was observed since the last flush to the metrics."""
        for metric, counted in ((metrics.events_received, self.events), (metrics.referrals, self.referrals),
                                (metrics.unrouted, self.unrouted)):
            if counted:
                for labels, n in counted.items():
                    self._child(metric, labels).inc(n)
                counted.clear()

    def _child(self, metric: MetricWrapperBase, labels: tuple[str, ...]) -> Any:
        child = self._children.get((metric, labels))
        if child is None:
            child = self._children[(metric, labels)] = metric.labels(*labels)
        return child
