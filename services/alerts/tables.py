"""The alerts service's faust plumbing: its three tables as an `AlertStore`, their restore, and a
`Sender` that waits for the broker's ack.

State lives in three faust tables whose changelog topics are declared in the topic catalog
(`alerts.states`, `cases.changes`, and `alerts.parked` for answers that arrive before their
referral): a worker killed and restarted restores them, and the handlers' indexes are rebuilt
from the restored states, so every pending re-send/escalation resumes. Table changelogs are
partitioned by key (`KeyedTable`) because the tables are updated from topics of different
partition counts (agency topics have 2, the others 4), where faust would otherwise insist the
changelog partition equal the source partition. The consequence, and a rule of deployment: the
alerts service runs as ONE active worker (a second one would split the tables between workers,
and clue matching must see every open case).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from bus.faust_app import BusApp
from bus.kafka.reader import latest_by_key, read_all
from bus.settings import KafkaSettings
from bus.upstream.faust_tables import KEY_CODEC, KeyPartitionedTable, TextKeys, overwrite_store
from services.alerts.metrics import AlertsMetrics
from services.alerts.store import MappingStore, screen
from topics.catalog import ALERT_PARKED, ALERT_STATES, CASES, TopicSpec

log = structlog.get_logger("alerts")

#: The input label of each changelog's refused records.
_INPUTS = {ALERT_STATES.name: "state", CASES.name: "case", ALERT_PARKED.name: "parked"}


class Tables(MappingStore):
    """The tracked states, cases and parked answers in faust tables registered on `app`."""

    def __init__(self, app: BusApp) -> None:
        TextKeys.register()
        self.app = app
        super().__init__(tracked=self._table("tracked", ALERT_STATES), cases=self._table("cases", CASES),
                         parked=self._table("parked", ALERT_PARKED))
        # Set once the tables are complete (see `restore`); handlers and timers wait for it.
        self.restored = asyncio.Event()

    def _table(self, name: str, spec: TopicSpec) -> Any:
        changelog = self.app.topic(spec.name, key_type=str, value_type=bytes, key_serializer=KEY_CODEC,
                                   value_serializer="raw", partitions=spec.partitions)
        app: Any = self.app
        return app.tables.add(KeyedTable(app, name=name, beacon=app.tables.beacon, key_type=str,
                                         value_type=bytes, partitions=spec.partitions,
                                         changelog_topic=changelog))

    async def restore(self, kafka: KafkaSettings, metrics: AlertsMetrics | None = None) -> None:
        """Complete faust's table recovery from the changelog topics, then open the gates.

        faust restores a table up to its changelog's end offsets, but the local Tansu broker
        reports a partition's end offset as the start of its last batch (see
        tests/integration/test_regression_end_offsets.py): the records after it — the last state
        changes before a crash — would be missing after a restart. Reading each changelog to its
        real end and applying the latest value per key to the store (the store, not the table:
        nothing is written back) makes the tables whole; no handler runs before that.
        """
        app: Any = self.app
        await app.tables.recovery.completed.wait()
        tables: tuple[tuple[Any, TopicSpec], ...] = (
            (self.tracked, ALERT_STATES), (self.parked_by_key, ALERT_PARKED), (self.cases_by_id, CASES))
        for table, spec in tables:
            # Only what the service itself would have written: a record another writer put on a
            # changelog (or a bug's) is left out, counted, and never met by a handler.
            kept, refused = screen(spec.name, latest_by_key(await read_all(kafka, [spec.name], limit=300.0)))
            overwrite_store(table, kept)
            for reason, n in refused.items():
                log.error("restore_refused", topic=spec.name, reason=reason, records=n)
                if metrics is not None:
                    metrics.records_refused.labels(_INPUTS[spec.name], reason).inc(n)
        self.restored.set()
        log.info("tables_restored", tracked=len(self.tracked), cases=len(self.cases_by_id))

    def ready(self) -> bool:
        """Tables fully restored and not rebalancing: deciding on a half-recovered state could
        escalate an answered alert."""
        app: Any = self.app
        return bool(self.restored.is_set() and app.tables.recovery.completed.is_set() and not app.rebalancing
                    and not getattr(app, "in_recovery", False))


class FaustSender:
    """Sends through the faust app's producer and waits for the broker's ack (acks=all).

    A send that fails (the broker did not answer within the request timeout) fails the worker's
    delivery guard for good: faust would restart the handler and ack its message, so the guard
    refuses every later commit and the worker exits; restarted, it reads the message again.
    """

    def __init__(self, app: BusApp, topic_for: Callable[[str], Any] | None = None) -> None:
        self.app = app
        self._topic_for = topic_for or (lambda name: app.topic(name, key_serializer="raw", value_serializer="raw"))
        self._topics: dict[str, Any] = {}

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        if topic not in self._topics:
            self._topics[topic] = self._topic_for(topic)
        try:
            fut = await self._topics[topic].send(key=key, value=value)
            await fut
        except Exception as exc:
            self.app.delivery_guard.trip(exc)
            raise


class KeyedTable(KeyPartitionedTable):
    """A table whose changelog partition follows its key (`KeyPartitionedTable`): its tables are
    written while processing topics of different partition counts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Keys on the wire as plain text, like every other topic keyed by an id (faust would
        # JSON-encode a str key, quotes included).
        self.key_serializer = KEY_CODEC

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        # faust buffers a table write and sends it in the background, only logging a failed one,
        # while the message that caused it gets committed. The transport's producer watches the
        # write once faust hands it over, but faust's flush before a commit can return while the
        # last write it took from its buffer is still being handed over (blocked on a stalled
        # broker): watched from the moment it is buffered, the write holds every commit until
        # the broker acknowledges it, and fails the guard for good if it does not.
        fut = super().send_changelog(*args, **kwargs)
        app: Any = self.app  # a BusApp (faust types it as its AppT)
        app.delivery_guard.track(fut)
        return fut
