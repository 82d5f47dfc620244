"""Read topics from the beginning without a consumer group (reports, demo, tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from bus.settings import KafkaSettings


async def _assign_all(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    await consumer.topics()  # refreshes the metadata partitions_for_topic reads
    parts: list[TopicPartition] = []
    for topic in topics:
        for p in sorted(consumer.partitions_for_topic(topic) or ()):
            parts.append(TopicPartition(topic, p))
    consumer.assign(parts)
    if parts:
        await consumer.seek_to_beginning(*parts)
    return parts


async def follow(settings: KafkaSettings, topics: Iterable[str]) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every message of `topics` from the beginning, then new ones as they arrive."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                                fetch_max_wait_ms=settings.fetch_max_wait_ms, group_id=None)
    await consumer.start()
    try:
        await _assign_all(consumer, topics)
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            for records in batches.values():
                for record in records:
                    yield record
    finally:
        await consumer.stop()


async def read_all(settings: KafkaSettings, topics: Iterable[str], idle: float = 1.0,
                   limit: float = 60.0) -> list[ConsumerRecord[bytes, bytes]]:
    """Everything on `topics` now: reads until nothing arrives for `idle` seconds (or `limit`).

    Not by end offsets: the local Tansu broker reports a partition's end offset as the start
    of its last batch, not past its last record (measured: 3,000 records, end offsets summing
    to 1,518), so a reader that stops at the end offsets misses records.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                                fetch_max_wait_ms=settings.fetch_max_wait_ms, group_id=None)
    await consumer.start()
    out: list[ConsumerRecord[bytes, bytes]] = []
    try:
        if not await _assign_all(consumer, topics):
            return out
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=int(idle * 1000), max_records=5000)
            if not batches:
                break
            for records in batches.values():
                out.extend(records)
            await asyncio.sleep(0)
        return out
    finally:
        await consumer.stop()


async def records_to_end(consumer: AIOKafkaConsumer, parts: list[TopicPartition],
                         quiet_ms: int = 300) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of the assigned `parts` up to now, for restoring state at start-up.

    Caught up means past the reported end offsets AND a fetch that returns nothing: the local
    Tansu broker under-reports end offsets, so they alone would stop the restore early.
    """
    ends = await consumer.end_offsets(parts)
    while True:
        batches = await consumer.getmany(*parts, timeout_ms=quiet_ms)
        for records in batches.values():
            for record in records:
                yield record
        if not batches:
            positions = [await consumer.position(p) for p in parts]
            if all(pos >= ends[p] for pos, p in zip(positions, parts, strict=True)):
                return
