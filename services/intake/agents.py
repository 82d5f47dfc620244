"""The intake's background work: reading receipts from the receipts topic into its store."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from bus.kafka.clients import consumer as make_consumer
from bus.settings import KafkaSettings
from schemas.receipts import Receipt
from services.intake.store import IntakeStore
from topics.catalog import RECEIPTS

log = structlog.get_logger("intake")


async def consume_receipts(kafka: KafkaSettings, store: IntakeStore, group: str) -> None:
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
                        try:
                            store.put_receipt(Receipt.model_validate_json(message.value or b""))
                        except ValidationError:
                            log.error("undecodable_receipt", partition=tp.partition, offset=message.offset)
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
