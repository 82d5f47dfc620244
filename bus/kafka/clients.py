"""aiokafka clients configured the one way the bus uses them (outside faust)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from referral_bus.kafka.partitioner import CachedKeyPartitioner
from referral_bus.settings import KafkaSettings


def producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """acks=all: a write counts only once every in-sync replica has it."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "acks": "all",
        "enable_idempotence": settings.idempotent_producer,
        "linger_ms": 1,
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
