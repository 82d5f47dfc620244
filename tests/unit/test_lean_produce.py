"""A worker's outputs appended straight to aiokafka's produce batches (`bus.upstream.lean_produce`):
the same records, partitions and order as aiokafka's own `send`, every batch watched by the
delivery guard, and anything the short way cannot take sent the usual way, in order. On an
aiokafka producer that is built but not started (no broker): its accumulator holds what would
be sent."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import RequestTimedOutError
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import PartitionMetadata, TopicPartition

from bus.demo_events import scripted_events
from bus.kafka.delivery import DeliveryFailed, DeliveryGuard
from bus.kafka.faust_transport import Consumer
from bus.kafka.partitioner import CachedKeyPartitioner
from bus.upstream.lean_produce import Output, send_outputs
from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from services.router.handling import Position, Router
from services.router.outputs import emitters

PARTITIONS = 4


def router_outputs() -> list[Output]:
    """What the router writes for the demo's events, one event after another."""
    deadlines = Deadlines.load()
    router = Router(load_rulebook(), deadlines, emitters(deadlines))
    out: list[Output] = []
    for i, event in enumerate(scripted_events()):
        out.extend(router.handle(json.dumps(event).encode(), Position("events.inbound", 0, i)).messages)
    return out


def unstarted_producer(topics: Sequence[str], **options: Any) -> AIOKafkaProducer:
    """An aiokafka producer as the bus configures it, knowing `topics` (4 partitions each, every
    one with a leader but partition 3 of each, whose leader is unknown)."""
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", acks="all", partitioner=CachedKeyPartitioner(),
                                **options)
    producer.client.cluster._partitions = {
        topic: {p: PartitionMetadata(topic, p, 0 if p != 3 else -1, [0], [0], None) for p in range(PARTITIONS)}
        for topic in topics}
    return producer


class UsualPath:
    """The worker's producer as `send_outputs` finds it: aiokafka's producer inside, and the usual
    `send`, recorded (it would go through faust to aiokafka's `send`)."""

    def __init__(self, aio: AIOKafkaProducer | None) -> None:
        self._producer = aio
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None, *_: Any) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value))
        if self._producer is not None and topic in self._producer.client.cluster._partitions:
            return await self._producer.send(topic, value, key=key)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def worker_app(aio: AIOKafkaProducer | None) -> Any:
    return SimpleNamespace(producer=UsualPath(aio), delivery_guard=DeliveryGuard())


def queued(producer: AIOKafkaProducer) -> dict[TopicPartition, list[tuple[bytes | None, bytes | None, Any]]]:
    """Every record waiting in the producer's batches, per partition, in order: (key, value, headers)."""
    out: dict[TopicPartition, list[tuple[bytes | None, bytes | None, Any]]] = {}
    for tp, batches in producer._message_accumulator._batches.items():
        for batch in batches:
            records = MemoryRecords(bytes(batch.get_data_buffer()))
            while records.has_next():
                record_batch = records.next_batch()
                assert record_batch is not None
                out.setdefault(tp, []).extend((r.key, r.value, list(r.headers)) for r in record_batch)
    return out


def test_outputs_are_queued_as_aiokafkas_send_queues_them_same_partitions_same_order() -> None:
    async def go() -> None:
        messages = router_outputs()
        topics = sorted({topic for topic, _, _ in messages})
        usual, lean = unstarted_producer(topics), unstarted_producer(topics)
        for topic, key, value in messages:
            await usual.send(topic, value, key=key)
        app = worker_app(lean)
        half = len(messages) // 2  # two calls: the second appends to the batches the first opened
        await send_outputs(app, messages[:half])
        await send_outputs(app, messages[half:])
        assert app.producer.sent == []  # every one went the short way
        expected = queued(usual)
        assert sum(len(records) for records in expected.values()) == len(messages)
        assert queued(lean) == expected

    asyncio.run(go())


def test_each_partition_batch_is_watched_and_a_failed_one_stops_the_commit() -> None:
    async def go() -> None:
        messages = router_outputs()
        aio = unstarted_producer(sorted({topic for topic, _, _ in messages}))
        app = worker_app(aio)
        await send_outputs(app, messages[:5])
        await send_outputs(app, messages[5:])
        batches = [batch for pending in aio._message_accumulator._batches.values() for batch in pending]
        guard: DeliveryGuard = app.delivery_guard
        assert guard.pending == len(batches) < len(messages)  # one future per batch, each once
        for batch in batches[:-1]:
            batch.done(base_offset=0)
        guard.raise_if_failed()  # one delivery still in flight: nothing failed yet
        batches[-1].failure(RequestTimedOutError())
        with pytest.raises(DeliveryFailed, match="RequestTimedOutError"):
            guard.raise_if_failed()
        consumer: Any = SimpleNamespace(app=SimpleNamespace(delivery_guard=guard,
                                                            conf=SimpleNamespace(producer_request_timeout=1.0)),
                                        log=logging.getLogger("test"), crashed=None)

        async def crash(exc: BaseException) -> None:
            consumer.crashed = exc

        consumer.crash = crash
        assert await Consumer._commit(consumer, {}) is False
        assert isinstance(consumer.crashed, DeliveryFailed)

    asyncio.run(go())


def test_what_the_short_way_cannot_take_goes_the_usual_way_in_order() -> None:
    async def go() -> None:
        aio = unstarted_producer(["referrals.a"], max_batch_size=300)
        app = worker_app(aio)
        big = b"x" * 150  # two of them do not fit one batch of 300 bytes
        messages: list[Output] = [("referrals.a", b"k", b"1"), ("no.metadata.yet", b"k", b"2"),
                                  ("referrals.a", b"k", b"3"), ("referrals.a", b"k", big),
                                  ("referrals.a", b"k", big)]
        await asyncio.wait_for(send_outputs(app, messages[:4]), 1)
        assert app.producer.sent == [messages[1]]  # no metadata: the usual way (which waits for it)
        sending = asyncio.ensure_future(send_outputs(app, messages[4:]))
        await asyncio.sleep(0.05)
        # The batch is full: the usual way waits until the sender has taken it, as before.
        assert app.producer.sent == [messages[1], messages[4]] and not sending.done()
        sending.cancel()
        tp = TopicPartition("referrals.a", aio._partition("referrals.a", None, None, None, b"k", None))
        assert [value for _, value, _ in queued(aio)[tp]] == [b"1", b"3", big]

    asyncio.run(go())


def test_a_producer_not_started_closed_or_failed_is_left_to_the_usual_way() -> None:
    async def go() -> None:
        messages: list[Output] = [("referrals.a", b"k", b"1"), ("referrals.a", b"k", b"2")]
        app = worker_app(None)  # faust's producer before it started
        await send_outputs(app, messages)
        assert app.producer.sent == messages
        aio = unstarted_producer(["referrals.a"])
        aio._message_accumulator.fail_all(RequestTimedOutError())
        app = worker_app(aio)
        with pytest.raises(RequestTimedOutError):  # raised by the usual way, as before
            await send_outputs(app, messages)
        assert app.producer.sent == messages[:1]

    asyncio.run(go())
