"""Publishing to the broker with an acknowledgement, or a clear failure within a deadline (the intake's
events, the console's answers)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from bus.kafka.clients import producer as make_producer
from bus.settings import KafkaSettings

log = structlog.get_logger("publisher")


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time; the caller answers 503 and the client retries."""


@dataclass(frozen=True)
class Written:
    """Where the broker put a message."""

    partition: int
    offset: int


class Publisher(Protocol):
    """What a publishing service needs from a producer (a fake in unit tests)."""

    async def publish(self, topic: str, key: bytes, value: bytes) -> Written: ...

    async def close(self) -> None: ...


class KafkaPublisher:
    """An aiokafka producer (acks=all) started lazily, so the intake starts with the broker down.

    The producer's request timeout is the publish deadline: a batch that the broker has not
    acknowledged by then fails rather than sitting in the producer's buffer to be sent later,
    after the client was told 503. A request already on the wire to a frozen broker can still
    land when the broker wakes; the client then retries the same `event_id`, and receivers drop
    the copy by id (at-least-once, see BROKER.md).
    """

    def __init__(self, settings: KafkaSettings, timeout_s: float) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                timeout_ms = max(1000, int(self._timeout_s * 1000))
                producer = make_producer(self._settings, request_timeout_ms=timeout_ms,
                                         metadata_max_age_ms=30_000)
                try:
                    await asyncio.wait_for(producer.start(), self._timeout_s)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await _quietly_stop(producer)
                    raise BrokerUnavailable(type(exc).__name__) from exc
                self._producer = producer
            return self._producer

    async def publish(self, topic: str, key: bytes, value: bytes) -> Written:
        producer = await self._started()
        try:
            # The outer deadline is a little longer than the producer's own, which should fire first.
            meta = await asyncio.wait_for(producer.send_and_wait(topic, value=value, key=key),
                                          self._timeout_s + 1.0)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("publish_failed", topic=topic, error=type(exc).__name__)
            raise BrokerUnavailable(type(exc).__name__) from exc
        return Written(meta.partition, meta.offset)

    async def close(self) -> None:
        if self._producer is not None:
            await _quietly_stop(self._producer)
            self._producer = None


async def _quietly_stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 5)
    except Exception:
        log.warning("producer_stop_failed")
