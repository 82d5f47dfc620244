"""One agency's reader: its consumer group on `referrals.<agency>`, dropping copies by referral id.

Order per message: skip if the id was already delivered (count it), else hand the referral to
the caller, then remember the id, then commit. A crash between handing over and remembering
shows the referral again (at-least-once), never loses it; ids remembered in SQLite survive a
restart of the reader.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from bus.dedup import SeenIds
from bus.delivery_metrics import DeliveryMetrics
from bus.kafka.clients import consumer as make_consumer
from bus.kafka.publisher import Publisher
from bus.settings import KafkaSettings
from rules.catalog import catalog
from schemas.receipts import AuditRecord, audit_record
from schemas.referrals import Referral
from topics.catalog import AUDIT, referral_topic_name

log = structlog.get_logger("delivery")


class UnknownAgency(ValueError):
    """The agency code is not in the catalog."""


def dedup_path(state_dir: Path, group: str) -> Path:
    return state_dir / "dedup" / f"{group}.sqlite"


@dataclass
class Delivered:
    """A referral handed to the caller, and where it came from (for the caller's own cursor)."""

    referral: Referral
    partition: int
    offset: int


class AgencyReader:
    """Reads one agency's referrals in one consumer group; use as an async context manager."""

    def __init__(self, kafka: KafkaSettings, state_dir: Path, agency: str, *, group: str,
                 metrics: DeliveryMetrics, audit: AuditSink | None = None) -> None:
        if agency not in catalog().agencies:
            raise UnknownAgency(agency)
        self.agency = agency
        self.group = group
        self.topic = referral_topic_name(agency)
        self._kafka = kafka
        self._metrics = metrics
        self._audit = audit
        self._seen: SeenIds | None = SeenIds(dedup_path(state_dir, group))
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> AgencyReader:
        self._consumer = make_consumer(self._kafka, self.topic, group_id=self.group)
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
        if self._seen is not None:
            self._seen.close()
            self._seen = None

    @overload
    def referrals(self, *, follow: bool, idle_exit: float, poll_ms: int = ...,
                  yield_idle: Literal[False] = ...) -> AsyncIterator[Delivered]: ...

    @overload
    def referrals(self, *, follow: bool, idle_exit: float, poll_ms: int = ...,
                  yield_idle: Literal[True]) -> AsyncIterator[Delivered | None]: ...

    async def referrals(self, *, follow: bool, idle_exit: float, poll_ms: int = 500,
                        yield_idle: bool = False) -> AsyncIterator[Delivered | None]:
        """Each new referral once. Without `follow`, stop after `idle_exit` seconds with nothing new.

        With `yield_idle`, an empty poll yields None, so a caller can write keep-alives.
        """
        assert self._consumer is not None, "use `async with`"
        last_activity = time.monotonic()
        while True:
            batch = await self._consumer.getmany(timeout_ms=poll_ms)
            if not batch:
                if not follow and time.monotonic() - last_activity >= idle_exit:
                    return
                if yield_idle:
                    yield None
                continue
            last_activity = time.monotonic()
            for tp, messages in batch.items():
                for message in messages:
                    referral = self._decode(message.value, tp, message.offset)
                    if referral is not None:
                        rid = str(referral.referral_id)
                        assert self._seen is not None
                        if rid in self._seen:
                            self._metrics.duplicates_dropped.labels(self.group).inc()
                            log.info("duplicate_dropped", consumer=self.group, referral_id=rid)
                        else:
                            yield Delivered(referral, tp.partition, message.offset)
                            self._seen.first_time(rid)
                            self._metrics.delivered.labels(self.agency).inc()
                            await self._record_received(referral)
                    # Committed only after the caller has the referral (printed or written).
                    await self._consumer.commit({tp: OffsetAndMetadata(message.offset + 1, "")})
            last_activity = time.monotonic()

    def _decode(self, value: bytes | None, tp: TopicPartition, offset: int) -> Referral | None:
        try:
            return Referral.model_validate_json(value or b"")
        except ValidationError:
            # Only the router writes here; a bad message is a bug to see, not a reason to stop.
            log.error("undecodable_referral", topic=tp.topic, partition=tp.partition, offset=offset)
            return None

    async def _record_received(self, referral: Referral) -> None:
        if self._audit is None:
            return
        record = audit_record(referral.event_id, "received", self.agency, dt.datetime.now(dt.UTC),
                              referral_id=referral.referral_id, agency=self.agency, detail=self.group)
        try:
            await self._audit.write(record)
        except Exception as exc:
            log.warning("audit_write_failed", referral_id=str(referral.referral_id),
                        error=type(exc).__name__)


class AuditSink:
    """Writes audit records to the audit topic through a publisher."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    async def write(self, record: AuditRecord) -> None:
        await self._publisher.publish(AUDIT.name, record.key, record.model_dump_json().encode())
