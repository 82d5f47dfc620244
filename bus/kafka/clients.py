"""aiokafka clients configured the one way the bus uses them (outside faust)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bus.kafka.partitioner import CachedKeyPartitioner
from bus.settings import KafkaSettings

#: How long every producer of the bus (faust's included) waits to fill a batch, and how big one
#: may get: a router event fans out to ~6-9 messages that one produce request carries together.
#: A longer linger (5 ms) added its whole wait to every alert at ordinary loads
#: (benchmarks/alert_latency.py at 250 ev/s: p50 30 -> 23 ms with 1 ms) and bought no throughput
#: (benchmarks/router.py; 20 ms did not lower the router's CPU at 500 ev/s either).
PRODUCER_LINGER_MS = 1
PRODUCER_MAX_BATCH_BYTES = 256 * 1024


def producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """acks=all: a write counts only once every in-sync replica has it."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "acks": "all",
        "enable_idempotence": settings.idempotent_producer,
        "linger_ms": PRODUCER_LINGER_MS,
        "max_batch_size": PRODUCER_MAX_BATCH_BYTES,
        "request_timeout_ms": settings.request_timeout_ms,
        "partitioner": CachedKeyPartitioner(),
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def consumer(settings: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    """Manual commits: a consumer commits only what it has fully handled (at-least-once)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "session_timeout_ms": settings.session_timeout_ms,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)
