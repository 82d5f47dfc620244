"""While its topics are quiet, a worker's consumer polls the broker less often, and at the bus's
own fetch wait again as soon as records come (`bus/kafka/faust_transport.py`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from bus.faust_app import make_app
from bus.kafka.batches import BATCH_MAX, BATCHES_WAITING
from bus.kafka.faust_transport import BACKLOG_FETCH_MAX_WAIT_MS, LONE_QUIET_AFTER_S, QUIET_AFTER_S
from bus.settings import KafkaSettings
from bus.upstream.faust_worker import FETCH_TIMEOUT_S
from topics.catalog import EVENTS


def _fetched(offsets: range) -> list[tuple[TP, Any]]:
    tp = TP(EVENTS.name, 0)
    return [(tp, SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=o)) for o in offsets]


async def test_the_consumer_polls_less_often_while_its_topics_are_quiet(kafka: KafkaSettings, tmp_path: Path) -> None:
    """A second without records: the worker fetches at the idle wait (few polls, little CPU for
    it and the broker); the first records after it bring the bus's own wait back."""
    quiet_kafka = kafka.model_copy(update={"idle_fetch_max_wait_ms": 300})
    app = make_app("fetch-wait-idle-test", quiet_kafka, tmp_path)
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    worker_consumer = thread._create_worker_consumer(app.transport)
    await worker_consumer.start()
    try:
        thread._consumer = worker_consumer
        fetcher = worker_consumer._fetcher
        consumer: Any = app.consumer
        assert fetcher._fetch_max_wait_ms == kafka.fetch_max_wait_ms
        # While busy, the fetch loop gives up waiting for records soon, to notice a quiet spell.
        assert consumer._fetch_timeout() == QUIET_AFTER_S < FETCH_TIMEOUT_S

        consumer._on_quiet()  # the fetch loop found nothing for QUIET_AFTER_S
        assert fetcher._fetch_max_wait_ms == 300
        assert consumer._fetch_timeout() == FETCH_TIMEOUT_S
        consumer._on_records()
        assert fetcher._fetch_max_wait_ms == kafka.fetch_max_wait_ms
        # Records that came alone after the quiet spell: a short busy tail (each poll of it is
        # paid by a lone event); more records within it are traffic, and keep the full tail.
        assert consumer._fetch_timeout() == LONE_QUIET_AFTER_S < QUIET_AFTER_S
        consumer._on_records()
        assert consumer._fetch_timeout() == QUIET_AFTER_S

        # Quiet again, then a backlog its agent is behind on: the backlog's wait, not the idle one.
        agent_queue: asyncio.Queue[list[Any]] = asyncio.Queue()
        app.batch_readers[EVENTS.name] = SimpleNamespace(queue=agent_queue)
        consumer._on_quiet()
        consumer._on_records()
        for _ in range(BATCHES_WAITING):
            agent_queue.put_nowait([])
        delivery = asyncio.ensure_future(consumer._deliver(_fetched(range(BATCH_MAX))))
        await asyncio.sleep(0.05)
        assert fetcher._fetch_max_wait_ms == BACKLOG_FETCH_MAX_WAIT_MS
        while not agent_queue.empty():
            agent_queue.get_nowait()
        await asyncio.wait_for(delivery, 5)
    finally:
        await worker_consumer.stop()


async def test_without_an_idle_wait_the_consumer_keeps_the_bus_wait(kafka: KafkaSettings, tmp_path: Path) -> None:
    app = make_app("fetch-wait-no-idle-test", kafka.model_copy(update={"idle_fetch_max_wait_ms": 0}), tmp_path)
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    worker_consumer = thread._create_worker_consumer(app.transport)
    await worker_consumer.start()
    try:
        thread._consumer = worker_consumer
        app.consumer._on_quiet()  # type: ignore[attr-defined]
        assert worker_consumer._fetcher._fetch_max_wait_ms == kafka.fetch_max_wait_ms
    finally:
        await worker_consumer.stop()
