"""Reading topics without a consumer group: to their end now (state restores, reports, the CLI's
views, tests), or from the beginning and on (the demo).

Every reader of the bus that needs "everything up to now" goes through `records_to_end`, because
the local Tansu broker reports a partition's end offset as the start of its last batch, not past
its last record (tests/integration/test_regression_end_offsets.py, which covers every user): a
reader that stopped at the end offsets would miss the last batch of each partition.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from bus.kafka.clients import consumer as make_consumer
from bus.settings import KafkaSettings

#: How long an empty fetch must stay empty to count as "nothing more": well above the fetch wait.
QUIET_MS = 300


async def assign_from_start(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    """Assign every partition of `topics` to a started, groupless `consumer`, at the beginning."""
    await consumer.topics()  # refreshes the metadata partitions_for_topic reads
    parts = [TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(parts)
    if parts:
        await consumer.seek_to_beginning(*parts)
    return parts


async def records_to_end(consumer: AIOKafkaConsumer, parts: list[TopicPartition],
                         quiet_ms: int = QUIET_MS) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of the assigned `parts`, from the consumer's positions up to now.

    Caught up means past the reported end offsets AND a fetch that returns nothing: the end
    offsets are only a floor on the local broker, so they alone would stop early.
    """
    if not parts:
        return
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


async def true_end_offsets(consumer: AIOKafkaConsumer, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Each assigned partition's real end (the offset after its last record), read past the floor
    the local broker reports (`records_to_end`). Leaves the consumer's positions at those ends."""
    if not parts:
        return {}
    for tp, end in (await consumer.end_offsets(parts)).items():
        consumer.seek(tp, end)
    async for _ in records_to_end(consumer, parts):
        pass
    return {tp: await consumer.position(tp) for tp in parts}


async def read_all(settings: KafkaSettings, topics: Iterable[str], *,
                   limit: float = 60.0) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topics` now, read from the beginning to the end (`records_to_end`); what
    was read when `limit` seconds have passed, if the topics are that long."""
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    out: list[ConsumerRecord[bytes, bytes]] = []
    try:
        parts = await assign_from_start(consumer, topics)
        deadline = time.monotonic() + limit
        async for record in records_to_end(consumer, parts):
            out.append(record)
            if time.monotonic() > deadline:
                break
        return out
    finally:
        await consumer.stop()


def latest_by_key(records: Iterable[ConsumerRecord[bytes, bytes]]) -> dict[str, bytes]:
    """The last value per key of a compacted topic (a tombstone deletes the key)."""
    out: dict[str, bytes] = {}
    for record in records:
        # A key that is not UTF-8 is not one the bus wrote: kept under a stand-in, for the
        # reader's own checks to refuse (never an exception in the middle of a restore).
        key = (record.key or b"").decode(errors="replace")
        if record.value is None:
            out.pop(key, None)
        else:
            out[key] = record.value
    return out


async def follow(settings: KafkaSettings, topics: Iterable[str]) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every message of `topics` from the beginning, then new ones as they arrive."""
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        await assign_from_start(consumer, topics)
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            for records in batches.values():
                for record in records:
                    yield record
    finally:
        await consumer.stop()
