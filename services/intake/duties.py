"""What an agency may answer, as the intake knows it: the alerts service's published states.

The answer endpoint (`POST /v1/referrals/{id}/answers`) refuses an id the bus does not know
(404) and an agency the alert or referral was not addressed or escalated to (403) before it
writes anything. It learns both from `alerts.states`, which it follows as it follows
`intake.claims` (`claims.py`): without a consumer group, from where this replica stopped, into
its SQLite store. Memory stays bounded: per id it keeps the entitled agencies
(`TrackedState.addressed_to()`, the one definition), the status, the twin and the event id (for
the audit line), never a subject or a history.

The alerts service stays the authority: it authorises every answer again when it reads it, so an
answer the intake let through a moment before a state changed is still refused there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from bus.boundary import TRACKED_STATE, Refusal, fault
from bus.kafka.clients import consumer as make_consumer
from bus.kafka.reader import true_end_offsets
from bus.settings import KafkaSettings
from schemas.alerts import TrackedState
from services.intake.metrics import IntakeMetrics
from services.intake.store import Duty, IntakeStore
from topics.catalog import ALERT_STATES

log = structlog.get_logger("intake")


class DutiesUnavailable(Exception):
    """The intake has not read the alerts service's states yet (starting, or the broker is away)."""


class Duties(Protocol):
    """The alerts and referrals agencies may answer."""

    async def find(self, duty_id: str, wait_s: float) -> Duty | None:
        """The duty, waiting up to `wait_s` for a state written just before the request;
        None when the bus does not know the id. DutiesUnavailable before the first full read."""
        ...

    def get(self, duty_id: str) -> Duty | None:
        """The duty as known now (no wait)."""
        ...


def duty_of(state: TrackedState) -> Duty:
    """What the intake keeps of a tracked state."""
    return Duty(id=str(state.id), event_id=str(state.event_id), kind=state.kind, status=state.status,
                agencies=state.addressed_to(), twin_id=str(state.twin_id) if state.twin_id else None)


class StoredDuties:
    """The duties in the store, as something else (a test, a replica without a broker) put them."""

    def __init__(self, store: IntakeStore) -> None:
        self._store = store

    async def find(self, duty_id: str, wait_s: float) -> Duty | None:
        return self._store.duty(duty_id)

    def get(self, duty_id: str) -> Duty | None:
        return self._store.duty(duty_id)


class DutiesFollower:
    """Follows `alerts.states` into the store; `find` waits for it to catch up on a miss."""

    def __init__(self, kafka: KafkaSettings, store: IntakeStore, metrics: IntakeMetrics | None = None) -> None:
        self._kafka, self._store, self._metrics = kafka, store, metrics
        self._cycles = 0  # fetches that found nothing more to read, since start
        self._caught_up = asyncio.Event()  # the topic was read to its end once
        self._changed = asyncio.Condition()

    def get(self, duty_id: str) -> Duty | None:
        return self._store.duty(duty_id)

    async def find(self, duty_id: str, wait_s: float) -> Duty | None:
        duty = self._store.duty(duty_id)
        if duty is not None:
            return duty
        if not self._caught_up.is_set():
            raise DutiesUnavailable("the alerts service's states are not read yet")
        # A state the alerts service wrote just before this request may not be read yet: wait for
        # two fetches that find nothing more (one of them began after the request arrived).
        target = self._cycles + 2
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                async with self._changed:
                    await self._changed.wait_for(
                        lambda: self._cycles >= target or self._store.duty(duty_id) is not None)
        return self._store.duty(duty_id)

    async def follow(self) -> None:
        """Apply `alerts.states` to the store from where this replica stopped; reconnects."""
        backoff = 0.5
        wait_ms = self._kafka.fetch_max_wait_ms + 200
        while True:
            consumer = make_consumer(self._kafka, group_id=None)
            try:
                await consumer.start()
                parts = await self._partitions()
                consumer.assign(parts)
                await self._seek(consumer, parts)
                backoff = 0.5
                checked = time.monotonic()
                while True:
                    if len(parts) < ALERT_STATES.partitions and time.monotonic() - checked > 2.0:
                        # The topic may appear after the intake started: a table's changelog is
                        # created by its first write on a broker that creates topics on demand.
                        checked = time.monotonic()
                        found = await self._partitions()
                        if set(found) != set(parts):
                            consumer.assign(found)
                            await self._seek(consumer, found)
                            parts = found
                    if not parts:
                        await asyncio.sleep(wait_ms / 1000)
                        async with self._changed:
                            self._cycles += 1
                            self._caught_up.set()
                            self._changed.notify_all()
                        continue
                    batch = await consumer.getmany(timeout_ms=wait_ms, max_records=1000)
                    for tp, messages in batch.items():
                        self._store.apply_duties(tp.partition, [
                            (m.offset, self._decode(m.key, m.value, tp.partition, m.offset)) for m in messages])
                    async with self._changed:
                        if not any(batch.values()):
                            self._cycles += 1
                            self._caught_up.set()
                        self._changed.notify_all()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                log.warning("states_follower_retry", error=type(exc).__name__, in_s=backoff)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), 5)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _partitions(self) -> list[TopicPartition]:
        """The topic's partitions, asked of the broker by a fresh client (a running consumer's
        metadata only follows the topics it already has)."""
        probe = make_consumer(self._kafka, group_id=None)
        await probe.start()
        try:
            await probe.topics()
            return [TopicPartition(ALERT_STATES.name, p)
                    for p in sorted(probe.partitions_for_topic(ALERT_STATES.name) or ())]
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(probe.stop(), 5)

    async def _seek(self, consumer: AIOKafkaConsumer, parts: list[TopicPartition]) -> None:
        stored = self._store.duty_positions()
        ends = await true_end_offsets(consumer, parts)
        if any(stored.get(tp.partition, 0) > ends[tp] for tp in parts):
            self._store.forget_duty_positions()  # the broker lost the topic: read it again
            stored = {}
        for tp in parts:
            consumer.seek(tp, stored.get(tp.partition, 0))

    def _decode(self, key: bytes | None, value: bytes | None, partition: int, offset: int) -> Duty | str | None:
        """A state as a duty; a tombstone as its key; None for anything else (counted, logged by
        position). Never raises for what the record holds."""
        try:
            if value is None:
                return (key or b"").decode(errors="replace")
            state = TRACKED_STATE.decode(value)
            if isinstance(state, Refusal):
                if self._metrics is not None:
                    self._metrics.records_refused.labels("states", state.reason).inc()
                log.error("state_refused", reason=state.reason, partition=partition, offset=offset)
                return None
            return duty_of(state)
        except Exception as exc:  # the last resort: the follower must not stop on one record
            fault("states", exc, partition=partition, offset=offset)
            if self._metrics is not None:
                self._metrics.internal_errors.labels("states").inc()
            return None
