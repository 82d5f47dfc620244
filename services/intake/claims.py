"""Which agency owns an event id, agreed by every intake replica through the claims topic.

Two replicas each with a store of their own cannot tell, on their own, that an agency re-uses
an event id another agency published through the other replica (it sees ids in referrals). So
before publishing, a replica *claims* the id on `intake.claims` and reads that partition up to
its own claim: all claims of an id are on one partition, in order, so every replica sees the
same first claim, and that agency owns the id everywhere. After the broker has the event, the
replica records the acceptance on the same topic: any replica then answers a repeated request
with the original answer.

`LocalClaims` is the same contract for a single process without a broker (unit tests, the
intake with no KAFKA_BOOTSTRAP_SERVERS).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import TypeAdapter

from bus.boundary import Contract, Refusal, fault
from bus.kafka.clients import consumer as make_consumer
from bus.kafka.publisher import BrokerUnavailable, Publisher
from bus.kafka.reader import true_end_offsets
from bus.settings import KafkaSettings
from schemas.receipts import EventClaim
from services.intake.metrics import IntakeMetrics
from services.intake.store import Accepted, IntakeStore
from topics.catalog import INTAKE_CLAIMS

log = structlog.get_logger("intake")

CLAIM: Contract[EventClaim] = Contract(TypeAdapter(EventClaim), invalid="invalid_claim")


class Claims(Protocol):
    """Ownership of event ids shared by the intake replicas."""

    async def claim(self, event_id: str, agency: str) -> str:
        """Claim `event_id` for `agency`; returns the owner (the first claim). BrokerUnavailable
        when the claim cannot be made or read back in time."""
        ...

    async def accepted(self, accepted: Accepted) -> Accepted:
        """Record an acceptance; returns the original (the first recorded)."""
        ...


class LocalClaims:
    """One process, one store: the store alone decides (no broker)."""

    def __init__(self, store: IntakeStore) -> None:
        self._store = store

    async def claim(self, event_id: str, agency: str) -> str:
        return self._store.claim(event_id, agency)

    async def accepted(self, accepted: Accepted) -> Accepted:
        return self._store.record(accepted)


class LogClaims:
    """Claims on the claims topic, applied to the store by a follower in log order."""

    def __init__(self, kafka: KafkaSettings, publisher: Publisher, store: IntakeStore, replica: str,
                 timeout_s: float, metrics: IntakeMetrics | None = None) -> None:
        self._kafka = kafka
        self._publisher = publisher
        self._store = store
        self._replica = replica
        self._timeout_s = timeout_s
        self._applied = asyncio.Condition()
        self._positions: dict[int, int] = {}
        self._metrics = metrics

    async def claim(self, event_id: str, agency: str) -> str:
        owner = self._store.owner(event_id)
        if owner is not None:
            return owner
        record = EventClaim(event_id=uuid.UUID(event_id), agency=agency, status="claimed",
                            replica=self._replica, at=dt.datetime.now(dt.UTC))
        written = await self._publisher.publish(INTAKE_CLAIMS.name, record.key, record.model_dump_json().encode())
        await self._read_past(written.partition, written.offset)
        owner = self._store.owner(event_id)
        assert owner is not None, "a claim read back is applied"
        return owner

    async def accepted(self, accepted: Accepted) -> Accepted:
        record = EventClaim(event_id=uuid.UUID(accepted.event_id), agency=accepted.agency, status="accepted",
                            replica=self._replica, at=accepted.accepted_at, body_sha256=accepted.body_sha256,
                            partition=accepted.partition, offset=accepted.offset)
        original = self._store.record(accepted)
        try:
            await self._publisher.publish(INTAKE_CLAIMS.name, record.key, record.model_dump_json().encode())
        except BrokerUnavailable:
            # The event is on the broker and this replica answers repeats from its own store;
            # another replica would publish a repeat again (a copy, dropped by id downstream).
            log.warning("acceptance_record_failed", event_id=accepted.event_id)
        return original

    async def _read_past(self, partition: int, offset: int) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._applied:
                    await self._applied.wait_for(lambda: self._positions.get(partition, 0) > offset)
        except TimeoutError as exc:
            raise BrokerUnavailable("claims not read back in time") from exc

    async def follow(self) -> None:
        """Apply the claims topic to the store from where this replica stopped; reconnects."""
        backoff = 0.5
        while True:
            consumer = make_consumer(self._kafka, group_id=None)
            try:
                await consumer.start()
                await consumer.topics()
                parts = [TopicPartition(INTAKE_CLAIMS.name, p)
                         for p in sorted(consumer.partitions_for_topic(INTAKE_CLAIMS.name) or ())]
                consumer.assign(parts)
                await self._seek(consumer, parts)
                backoff = 0.5
                while True:
                    batch = await consumer.getmany(timeout_ms=1000)
                    for tp, messages in batch.items():
                        self._store.apply_claims(tp.partition, [(m.offset, self._decode(m.value, tp, m.offset))
                                                                for m in messages])
                        if messages:
                            await self._advance(tp.partition, messages[-1].offset + 1)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                log.warning("claims_follower_retry", error=type(exc).__name__, in_s=backoff)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), 5)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _seek(self, consumer: AIOKafkaConsumer, parts: list[TopicPartition]) -> None:
        stored = self._store.claim_positions()
        ends = await true_end_offsets(consumer, parts)
        if any(stored.get(tp.partition, 0) > ends[tp] for tp in parts):
            self._store.forget_claim_positions()  # the broker lost the topic: read it again
            stored = {}
        for tp in parts:
            consumer.seek(tp, stored.get(tp.partition, 0))
            await self._advance(tp.partition, stored.get(tp.partition, 0))

    async def _advance(self, partition: int, next_offset: int) -> None:
        async with self._applied:
            self._positions[partition] = max(self._positions.get(partition, 0), next_offset)
            self._applied.notify_all()

    def _decode(self, value: bytes | None, tp: TopicPartition, offset: int) -> EventClaim | None:
        """A claim, or None for anything else on the topic (counted and logged by position)."""
        try:
            claim = CLAIM.decode(value)
        except Exception as exc:  # the last resort: the follower must not stop on one record
            fault("claims", exc, topic=tp.topic, partition=tp.partition, offset=offset)
            if self._metrics is not None:
                self._metrics.internal_errors.labels("claims").inc()
            claim = Refusal("internal_error")
        if isinstance(claim, Refusal):
            if self._metrics is not None:
                self._metrics.records_refused.labels("claims", claim.reason).inc()
            log.error("claim_refused", reason=claim.reason, partition=tp.partition, offset=offset)
            return None
        return claim
