"""The intake's background work: reading receipts from the receipts topic into its store."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from bus.boundary import RECEIPT, Refusal, fault
from bus.kafka.clients import consumer as make_consumer
from bus.settings import KafkaSettings
from services.intake.metrics import IntakeMetrics
from services.intake.store import IntakeStore
from topics.catalog import RECEIPTS

log = structlog.get_logger("intake")


def keep_receipt(store: IntakeStore, value: bytes | None, partition: int, offset: int,
                 metrics: IntakeMetrics | None = None) -> str:
    """Store one record of the receipts topic, or refuse it; returns what happened. Never raises
    for what the record holds: only the router writes receipts, and one that is not a receipt
    (a bug, or someone else who can write the topic) is counted and logged by position."""
    try:
        receipt = RECEIPT.decode(value)
        if isinstance(receipt, Refusal):
            if metrics is not None:
                metrics.records_refused.labels("receipts", receipt.reason).inc()
            log.error("receipt_refused", reason=receipt.reason, partition=partition, offset=offset)
            return receipt.reason
        store.put_receipt(receipt)
        return "stored"
    except Exception as exc:  # the last resort: the receipt store must keep up with the rest
        fault("receipts", exc, partition=partition, offset=offset)
        if metrics is not None:
            metrics.internal_errors.labels("receipts").inc()
        return "internal_error"


async def consume_receipts(kafka: KafkaSettings, store: IntakeStore, group: str,
                           metrics: IntakeMetrics | None = None) -> None:
    """Keep the receipt store up to date; survives a broker outage by reconnecting with backoff."""
    backoff = 0.5
    while True:
        consumer = make_consumer(kafka, RECEIPTS.name, group_id=group)
        try:
            await consumer.start()
            backoff = 0.5
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for tp, messages in batch.items():
                    for message in messages:
                        keep_receipt(store, message.value, tp.partition, message.offset, metrics)
                    if messages:
                        await consumer.commit({tp: OffsetAndMetadata(messages[-1].offset + 1, "")})
        except asyncio.CancelledError:
            raise
        except (KafkaError, OSError) as exc:
            log.warning("receipts_consumer_retry", error=type(exc).__name__, in_s=backoff)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 5)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 30.0)
