"""Read whole topics without a consumer group: the CLI's view of the service's state topics."""

from __future__ import annotations

import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from bus.settings import KafkaSettings


async def read_topics(settings: KafkaSettings, topics: Iterable[str],
                      limit: float = 30.0) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message on `topics` at the time of the call (and any that arrive while reading)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                                fetch_max_wait_ms=settings.fetch_max_wait_ms, group_id=None)
    await consumer.start()
    out: list[ConsumerRecord[bytes, bytes]] = []
    try:
        await consumer.topics()  # metadata of every topic, so partitions_for_topic knows them
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not parts:
            return out
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        # The local broker's end offset can lag behind a multi-record batch (measured on Tansu
        # 0.6.0: three records produced in one batch, ListOffsets(latest) answers 1), so the end
        # offsets are a floor only: read until they are reached AND a fetch comes back empty.
        ends = await consumer.end_offsets(parts)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                out.extend(records)
            if not batches and all([await consumer.position(p) >= ends[p] for p in parts]):
                break
        return out
    finally:
        await consumer.stop()


def latest_by_key(records: Iterable[ConsumerRecord[bytes, bytes]]) -> dict[str, bytes]:
    """The last value per key of a compacted topic (a tombstone deletes the key)."""
    out: dict[str, bytes] = {}
    for record in records:
        key = (record.key or b"").decode()
        if record.value is None:
            out.pop(key, None)
        else:
            out[key] = record.value
    return out
