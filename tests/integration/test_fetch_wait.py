"""While an agent reading in batches is behind, its worker's consumer polls the broker less often,
and at the bus's own fetch wait again once the agent has caught up (`bus/kafka/faust_transport.py`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from bus.faust_app import make_app
from bus.kafka.batches import BATCH_MAX, BATCHES_WAITING
from bus.kafka.faust_transport import BACKLOG_FETCH_MAX_WAIT_MS
from bus.settings import KafkaSettings
from topics.catalog import EVENTS


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
        app.batch_readers[EVENTS.name] = SimpleNamespace(queue=agent_queue)
        consumer: Any = app.consumer

        async def hand_over_to_a_full_queue(offsets: range) -> None:
            for _ in range(BATCHES_WAITING - agent_queue.qsize()):
                agent_queue.put_nowait([])
            delivery = asyncio.ensure_future(consumer._deliver(_fetched(offsets)))
            await asyncio.sleep(0.05)
            while not agent_queue.empty():  # the agent catches up
                agent_queue.get_nowait()
            await asyncio.wait_for(delivery, 5)

        # A short stall of the agent in live traffic (a few records per fetch): no change.
        await hand_over_to_a_full_queue(range(3))
        assert fetcher._fetch_max_wait_ms == kafka.fetch_max_wait_ms
        # A backlog (fetches of a batch or more) with the agent behind: fewer polls.
        await hand_over_to_a_full_queue(range(3, 3 + BATCH_MAX))
        assert fetcher._fetch_max_wait_ms == BACKLOG_FETCH_MAX_WAIT_MS
        # Caught up (its queue empty when the next records come): the bus's own wait again.
        while not agent_queue.empty():
            agent_queue.get_nowait()
        await consumer._deliver(_fetched(range(3 + BATCH_MAX, 5 + BATCH_MAX)))
        assert fetcher._fetch_max_wait_ms == kafka.fetch_max_wait_ms
    finally:
        await worker_consumer.stop()
