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

from bus.boundary import REFERRAL, Refusal, fault
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
                    referral = self.examine(message.value, tp, message.offset)
                    if isinstance(referral, Referral):
                        yield Delivered(referral, tp.partition, message.offset)
                        assert self._seen is not None
                        self._seen.first_time(str(referral.referral_id))
                        self._metrics.delivered.labels(self.agency).inc()
                        await self._record_received(referral)
                    # Committed only after the caller has the referral (printed or written).
                    await self._consumer.commit({tp: OffsetAndMetadata(message.offset + 1, "")})
            last_activity = time.monotonic()

    def examine(self, value: bytes | None, tp: TopicPartition, offset: int) -> Referral | str:
        """The referral to hand over, or why not: `duplicate`, the boundary's reason for a message
        that is not a referral, `wrong_agency`, or `internal_error`. Never raises.

        Only the router and the alerts service write an agency's topic, so a message refused here
        is a bug or someone else who can write it: counted and logged with its position, never
        its contents, and the reader goes on.
        """
        try:
            found = self._examine(value)
        except Exception as exc:
            # Counted as refused with reason internal_error (the reader shares the intake's registry).
            fault("deliver", exc, topic=tp.topic, partition=tp.partition, offset=offset)
            found = "internal_error"
        if isinstance(found, str) and found != "duplicate":
            self._metrics.refused.labels(found).inc()
            log.error("referral_refused", reason=found, topic=tp.topic, partition=tp.partition, offset=offset)
        return found

    def _examine(self, value: bytes | None) -> Referral | str:
        referral = REFERRAL.decode(value)
        if isinstance(referral, Refusal):
            return referral.reason
        if referral.agency != self.agency:
            return "wrong_agency"  # the topic is one agency's: another's referral is not for this reader
        rid = str(referral.referral_id)
        assert self._seen is not None
        if rid in self._seen:
            self._metrics.duplicates_dropped.labels(self.group).inc()
            log.info("duplicate_dropped", consumer=self.group, referral_id=rid)
            return "duplicate"
        return referral

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
