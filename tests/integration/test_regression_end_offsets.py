"""Regression: the local broker under-reports end offsets, so readers must not stop at them.

Found while benchmarking: after 3,000 batched records, Tansu's ListOffsets answered end offsets
summing to about half the records; a reader that stopped there lost the rest.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bus.kafka.reader import read_all, records_to_end
from bus.settings import KafkaSettings
from topics.catalog import AUDIT

pytestmark = pytest.mark.integration

N = 3000


async def fill(kafka: KafkaSettings) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(AUDIT.name, b"x" * 200, key=str(i).encode()) for i in range(N)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def test_readers_get_every_record_of_batched_writes(kafka: KafkaSettings) -> None:
    asyncio.run(fill(kafka))
    assert len(asyncio.run(read_all(kafka, [AUDIT.name], idle=0.5))) == N

    async def restore() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()
            parts = [TopicPartition(AUDIT.name, p) for p in sorted(consumer.partitions_for_topic(AUDIT.name) or ())]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            return len([r async for r in records_to_end(consumer, parts)])
        finally:
            await consumer.stop()

    assert asyncio.run(restore()) == N
