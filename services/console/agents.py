"""The console's reader of the bus: one fan-out for every desk of every agency.

It reads the published decisions (`alerts.states`, `cases.changes`), the broadcast state
(`broadcast.state`) and the answers the alerts service refused (`answers.refused`: an officer's
own refused answer is shown on its card) from their beginning with NO consumer group: every
console process sees every record, and every open board in it is told of every change that
concerns it. Every record goes through the trust boundary first. Desks never
split messages between them the way members of one consumer group would (issue #21: two pagers
each saw half of the alerts).

aiokafka rather than faust: the console only reads compacted topics to their end and follows
them; a group, a changelog or an agent would add nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import TypeAdapter

from bus.boundary import CASE_CHANGE, OWN_RECORDS, REFUSED_ANSWER, TRACKED_STATE, Contract, Refusal
from bus.kafka.clients import consumer
from bus.kafka.reader import records_to_end
from bus.settings import KafkaSettings
from schemas.alerts import CaseChange, TrackedState
from schemas.answers import RefusedAnswer
from schemas.broadcast import CaseBroadcast
from services.console.board import BusState
from services.console.metrics import ConsoleMetrics
from topics.catalog import ALERT_STATES, ANSWERS_REFUSED, BROADCAST_STATE, CASES, TopicSpec

log = structlog.get_logger("console")

What = Literal["state", "case", "broadcast", "pending"]


@dataclass(frozen=True)
class Change:
    """Something a board may need to redraw: a tracked id, a case id, or an answer's referral id."""

    what: What
    key: str
    #: When the record was written to the bus (ms), for the fan-out latency histogram.
    written_ms: int | None = None


BROADCAST_STATE_RECORD: Contract[CaseBroadcast] = Contract(TypeAdapter(CaseBroadcast), invalid="invalid_broadcast",
                                                            limits=OWN_RECORDS)
#: The topics the console follows, and what each holds.
FOLLOWED: dict[str, tuple[Contract[Any], What]] = {
    ALERT_STATES.name: (TRACKED_STATE, "state"),
    CASES.name: (CASE_CHANGE, "case"),
    BROADCAST_STATE.name: (BROADCAST_STATE_RECORD, "broadcast"),
    ANSWERS_REFUSED.name: (REFUSED_ANSWER, "pending"),
}


class Fanout:
    """Subscribers (one queue per open board) told of every change."""

    def __init__(self, metrics: ConsoleMetrics) -> None:
        self._queues: set[asyncio.Queue[Change]] = set()
        self._metrics = metrics

    def subscribe(self) -> asyncio.Queue[Change]:
        queue: asyncio.Queue[Change] = asyncio.Queue(maxsize=10_000)
        self._queues.add(queue)
        self._metrics.desks.set(len(self._queues))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change]) -> None:
        self._queues.discard(queue)
        self._metrics.desks.set(len(self._queues))

    def publish(self, change: Change) -> None:
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                # A board that stopped reading is dropped when its connection ends; the rest go on.
                queue.put_nowait(change)


class BusReader:
    """Reads the followed topics into a `BusState` and tells the fan-out of each change."""

    def __init__(self, kafka: KafkaSettings, fanout: Fanout, metrics: ConsoleMetrics,
                 topics: tuple[TopicSpec, ...] = (ALERT_STATES, CASES, BROADCAST_STATE, ANSWERS_REFUSED),
                 clock: Callable[[], float] = time.time,
                 on_refusal: Callable[[RefusedAnswer], str | None] = lambda _: None) -> None:
        self.kafka, self.fanout, self.metrics, self.clock = kafka, fanout, metrics, clock
        #: Told of every refused answer; the referral id when it was one given here (its card redraws).
        self.on_refusal = on_refusal
        self.topics = topics
        self.bus = BusState()
        self.ready = asyncio.Event()
        self.undecodable = 0
        self._positions: dict[TopicPartition, int] = {}
        # Partitions of the followed topics as the catalog declares them: fewer means a topic
        # is not there yet.
        self._expected = sum(t.partitions for t in topics)

    def apply(self, record: ConsumerRecord[bytes, bytes]) -> Change | None:
        """Decode one record into the state; None for a tombstone, a key-less or undecodable record,
        or a refused answer not given here."""
        contract, what = FOLLOWED[record.topic]
        if record.value is None or record.key is None:
            return None
        value = contract.decode(record.value)
        if isinstance(value, Refusal):
            self.undecodable += 1
            log.warning("undecodable", topic=record.topic, partition=record.partition, offset=record.offset,
                        reason=value.reason)
            return None
        key = record.key.decode(errors="replace")
        if isinstance(value, RefusedAnswer):
            referral_id = self.on_refusal(value)
            return None if referral_id is None else Change(what, referral_id, record.timestamp)
        if isinstance(value, TrackedState):
            self.bus.put_state(value)
            key = str(value.id)
        elif isinstance(value, CaseChange):
            self.bus.cases[str(value.case_id)] = value
            key = str(value.case_id)
        elif isinstance(value, CaseBroadcast):
            self.bus.broadcasts[str(value.case_id)] = value
            key = str(value.case_id)
        return Change(what, key, record.timestamp)

    async def run(self, stop: asyncio.Event) -> None:
        """Restore to the end, then follow until `stop`; a broker outage is waited out (aiokafka
        reconnects by itself), with one log line when it starts and one when it ends."""
        while not stop.is_set():
            try:
                await self._run(stop)
            except (KafkaError, OSError) as exc:
                log.warning("bus_unreachable", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)

    async def _partitions(self) -> list[TopicPartition]:
        """The followed topics' partitions, asked of the broker by a fresh client: a running
        consumer's metadata only follows the topics it already has."""
        probe = consumer(self.kafka, group_id=None)
        await probe.start()
        try:
            await probe.topics()
            return [TopicPartition(t.name, p) for t in self.topics
                    for p in sorted(probe.partitions_for_topic(t.name) or ())]
        finally:
            await probe.stop()

    async def _run(self, stop: asyncio.Event) -> None:
        c = consumer(self.kafka, group_id=None)
        await c.start()
        try:
            parts = await self._partitions()
            c.assign(parts)
            if not self.ready.is_set():
                if parts:
                    await c.seek_to_beginning(*parts)
                    async for record in records_to_end(c, parts):
                        self.apply(record)
                for tp in parts:
                    self._positions[tp] = await c.position(tp)
                self.ready.set()
                log.info("console_restored", states=len(self.bus.states), cases=len(self.bus.cases),
                         broadcasts=len(self.bus.broadcasts))
            else:
                await self._resume(c, parts)
            checked = time.monotonic()
            while not stop.is_set():
                if len(parts) < self._expected and time.monotonic() - checked > 2.0:
                    # A followed topic may appear after the console started (a table's changelog
                    # is created by its first write on a broker that creates topics on demand).
                    checked = time.monotonic()
                    found = await self._partitions()
                    if set(found) != set(parts):
                        for tp in parts:
                            self._positions[tp] = await c.position(tp)
                        parts = found
                        c.assign(parts)
                        await self._resume(c, parts)
                if not parts:
                    await asyncio.sleep(0.5)
                    continue
                batches = await c.getmany(timeout_ms=500, max_records=1000)
                now_ms = int(self.clock() * 1000)
                for tp, records in batches.items():
                    for record in records:
                        change = self.apply(record)
                        if change is not None:
                            self.fanout.publish(change)
                            if change.written_ms:
                                self.metrics.fanout_seconds.observe(max(0.0, (now_ms - change.written_ms) / 1000))
                    if records:
                        self._positions[tp] = records[-1].offset + 1
        finally:
            with contextlib.suppress(Exception):
                await c.stop()

    async def _resume(self, c: AIOKafkaConsumer, parts: list[TopicPartition]) -> None:
        """Go on from where this process had read; a partition never read starts at its beginning."""
        for tp in parts:
            if tp in self._positions:
                c.seek(tp, self._positions[tp])
            else:
                await c.seek_to_beginning(tp)
