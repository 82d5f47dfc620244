"""While an agent reading in batches is behind, its worker's consumer polls the broker less often,
and at the bus's own fetch wait again once the agent has caught up (`bus/kafka/faust_transport.py`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from referral_bus.faust_app import make_app
from referral_bus.kafka.batches import BATCHES_WAITING
from referral_bus.kafka.faust_transport import BACKLOG_FETCH_MAX_WAIT_MS
from referral_bus.settings import KafkaSettings
from referral_bus.topics.catalog import EVENTS


def _fetched(offsets: range) -> list[tuple[TP, Any]]:
    tp = TP(EVENTS.name, 0)
    return [(tp, SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=o)) for o in offsets]


async def test_the_consumer_polls_less_often_while_its_agent_is_behind(kafka: KafkaSettings, tmp_path: Path) -> None:
    app = make_app("fetch-wait-test", kafka, tmp_path)
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    # faust's worker consumer, as the bus's transport builds it, started on the real broker.
    worker_consumer = thread._create_worker_consumer(app.transport)
    await worker_consumer.start()
    try:
        thread._consumer = worker_consumer
        fetcher = worker_consumer._fetcher
        assert fetcher._fetch_max_wait_ms == kafka.fetch_max_wait_ms < BACKLOG_FETCH_MAX_WAIT_MS

        agent_queue: asyncio.Queue[list[Any]] = asyncio.Queue()
        for _ in range(BATCHES_WAITING):
            agent_queue.put_nowait([])
        app.batch_readers[EVENTS.name] = SimpleNamespace(queue=agent_queue)
        delivery = asyncio.ensure_future(app.consumer._deliver(_fetched(range(3))))  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        assert fetcher._fetch_max_wait_ms == BACKLOG_FETCH_MAX_WAIT_MS  # the agent is behind

        while not agent_queue.empty():  # the agent catches up
            agent_queue.get_nowait()
        await asyncio.wait_for(delivery, 5)
        agent_queue.get_nowait()
        await app.consumer._deliver(_fetched(range(3, 5)))  # type: ignore[attr-defined]
        assert fetcher._fetch_max_wait_ms == kafka.fetch_max_wait_ms
    finally:
        await worker_consumer.stop()
