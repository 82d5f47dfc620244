"""Regression: the local broker under-reports end offsets, so readers must not stop at them.

Found while benchmarking: after 3,000 batched records, Tansu's ListOffsets answered end offsets
summing to about half the records; a reader that stopped there lost the rest. Every reader of the
bus that reads a topic "to its end" goes through `bus.kafka.reader.records_to_end`; each one is
checked here through its own entry point, on a topic filled with batched writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from bus.kafka.clients import consumer
from bus.kafka.reader import assign_from_start, read_all, records_to_end
from bus.settings import KafkaSettings
from schemas.referrals import DeadLetter
from services.alerts.cli import latest
from services.alerts.pager.feed import DecisionFeed
from services.alerts.pager.memory import DeskMemory
from services.intake.operator import read_dead_letters
from services.report.reader import read_topics as read_report_topics
from topics.catalog import ALERT_STATES, AUDIT, CASES, DEAD_LETTERS, ESCALATIONS

pytestmark = pytest.mark.integration

N = 3000


async def fill(kafka: KafkaSettings, topic: str, value: Callable[[int], bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value(i), key=str(i).encode()) for i in range(N)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _padding(_: int) -> bytes:
    return b"x" * 200


def _dead_letter(i: int) -> bytes:
    return DeadLetter(reason="invalid_json", topic="events.inbound", partition=0, offset=i, original_b64="",
                      received_at=dt.datetime.now(dt.UTC), event_id=str(uuid.uuid4())).model_dump_json().encode()


async def _groupless(kafka: KafkaSettings) -> int:
    """A state restore's way: a consumer of its own, positioned at the start, read to the end."""
    c = consumer(kafka, group_id=None)
    await c.start()
    try:
        parts = await assign_from_start(c, [AUDIT.name])
        return len([r async for r in records_to_end(c, parts)])
    finally:
        await c.stop()


async def _read_all(kafka: KafkaSettings) -> int:
    return len(await read_all(kafka, [AUDIT.name]))


async def _report(kafka: KafkaSettings) -> int:
    return (await read_report_topics(kafka)).records


async def _cli_latest(kafka: KafkaSettings) -> int:
    return len(await latest(kafka, ALERT_STATES.name))


async def _dead_letters(kafka: KafkaSettings) -> int:
    return len(await read_dead_letters(kafka))


async def _pager(kafka: KafkaSettings) -> int:
    """A desk reads `cases.changes` to its end before deciding the states of each fetch."""
    feed = DecisionFeed(kafka, DeskMemory(None), timeout=30.0)
    await feed.connect()
    try:
        return len(await feed.cases_to_end())
    finally:
        await feed.disconnect()


Reader = Callable[[KafkaSettings], Coroutine[Any, Any, int]]

READERS: dict[str, tuple[str, Callable[[int], bytes], Reader]] = {
    "read_all (tests, broadcast and alerts restores)": (AUDIT.name, _padding, _read_all),
    "records_to_end on a consumer of one's own": (AUDIT.name, _padding, _groupless),
    "the annual report": (ESCALATIONS.name, _padding, _report),
    "`referral-bus cases` and `status` (latest per key)": (ALERT_STATES.name, _padding, _cli_latest),
    "`referral-bus deadletters`": (DEAD_LETTERS.name, _dead_letter, _dead_letters),
    "`referral-bus page` (case changes)": (CASES.name, _padding, _pager),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_readers_get_every_record_of_batched_writes(kafka: KafkaSettings, reader: str) -> None:
    topic, value, read = READERS[reader]
    asyncio.run(fill(kafka, topic, value))
    assert asyncio.run(read(kafka)) == N
