"""Fakes for the alerts service's handlers: a sender that records, a readiness switch, and the
handlers over plain dicts (`MappingStore`, the store the worker uses over its faust tables)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from rules.deadlines import Deadlines
from services.alerts import cases
from services.alerts.handlers import AlertsConfig, Handlers
from services.alerts.metrics import AlertsMetrics
from services.alerts.settings import CASES_FILE
from services.alerts.store import MappingStore


@dataclass
class RecordingSender:
    """Every message the handlers sent, as (topic, key, value); the broker acknowledges each."""

    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key, value))

    @property
    def topics(self) -> list[str]:
        return [topic for topic, _, _ in self.sent]


@dataclass
class Readiness:
    """Whether the store is restored and stable; switched off to stand for a rebalance."""

    ready: bool = True

    def __call__(self) -> bool:
        return self.ready


@dataclass
class Service:
    """The handlers with what a test looks at beside them."""

    handlers: Handlers
    store: MappingStore
    sender: RecordingSender
    readiness: Readiness


def service() -> Service:
    config = AlertsConfig(deadlines=Deadlines.load(), policy=cases.CasePolicy.load(CASES_FILE), resends=1,
                          timer_interval=0.5)
    store, sender, readiness = MappingStore({}, {}, {}), RecordingSender(), Readiness()
    handlers = Handlers(store, sender, config, AlertsMetrics(CollectorRegistry()), ready=readiness)
    return Service(handlers, store, sender, readiness)
