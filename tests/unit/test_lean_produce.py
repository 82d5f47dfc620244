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
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import RequestTimedOutError
from aiokafka.protocol.api import ResponseHeader_v0
from aiokafka.protocol.produce import (
    ProduceRequest,
    ProduceRequest_v2,
    ProduceRequest_v3,
    ProduceRequest_v4,
    ProduceRequest_v5,
    ProduceRequest_v6,
    ProduceRequest_v7,
)
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import PartitionMetadata, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.demo_events import scripted_events
from bus.faust_app import make_app
from bus.kafka.delivery import DeliveryFailed, DeliveryGuard
from bus.kafka.faust_transport import Consumer
from bus.kafka.partitioner import CachedKeyPartitioner
from bus.settings import KafkaSettings
from bus.upstream.lean_produce import (
    LEAN_REQUESTS,
    AppendState,
    LeanAIOKafkaProducer,
    LeanProduceRequest,
    LeanSender,
    Output,
    send_outputs,
)
from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from services.router.handling import Position, Router
from services.router.outputs import emitters

PARTITIONS = 4
STOCK_REQUESTS: dict[int, type[Any]] = {r.API_VERSION: r for r in (
    ProduceRequest_v2, ProduceRequest_v3, ProduceRequest_v4, ProduceRequest_v5, ProduceRequest_v6, ProduceRequest_v7)}


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
        self.appends = AppendState()
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None, *_: Any) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value))
        if self._producer is not None and topic in self._producer.client.cluster._partitions:
            delivery: asyncio.Future[Any] = await self._producer.send(topic, value, key=key)
            return delivery
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
        told: list[DeliveryFailed] = []
        guard.on_failure = told.append
        batches[-1].failure(RequestTimedOutError())
        await asyncio.sleep(0)
        assert len(told) == 1  # at once, without waiting for a commit (the worker crashes)
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


# Produce requests and answers written and read with `struct` (`LeanAIOKafkaProducer`)

_names = st.text(min_size=0, max_size=12)
_records = st.one_of(st.none(), st.binary(max_size=64).map(bytearray))
_request_topics = st.lists(st.tuples(_names, st.lists(st.tuples(st.integers(0, 2**31 - 1), _records), max_size=4)),
                           max_size=5)
_answer_topics = st.one_of(st.none(), st.lists(st.tuples(
    st.one_of(st.none(), _names),
    st.one_of(st.none(), st.lists(st.tuples(st.integers(-2**31, 2**31 - 1), st.integers(-2**15, 2**15 - 1),
                                            *[st.integers(-2**63, 2**63 - 1)] * 3), max_size=4))), max_size=5))


@settings(max_examples=200, deadline=None)
@given(version=st.sampled_from(sorted(LEAN_REQUESTS)), transactional_id=st.one_of(st.none(), _names),
       acks=st.sampled_from([-1, 0, 1]), timeout=st.integers(0, 2**31 - 1), topics=_request_topics,
       correlation_id=st.integers(0, 2**31 - 1), client_id=_names)
def test_a_produce_request_is_written_to_the_bytes_aiokafkas_schema_writes(
        version: int, transactional_id: str | None, acks: int, timeout: int,
        topics: list[tuple[str, list[tuple[int, bytearray | None]]]], correlation_id: int, client_id: str) -> None:
    request = ProduceRequest(transactional_id, acks, timeout, topics)
    stock = request.build(STOCK_REQUESTS[version])
    lean = LeanProduceRequest(transactional_id, acks, timeout, topics).prepare({0: (0, version)})
    assert type(lean) is LEAN_REQUESTS[version]
    assert lean.encode() == stock.encode()
    assert (lean.build_request_header(correlation_id, client_id).encode()
            == stock.build_request_header(correlation_id=correlation_id, client_id=client_id).encode())


@settings(max_examples=200, deadline=None)
@given(version=st.sampled_from(sorted(LEAN_REQUESTS)), topics=_answer_topics,
       throttle=st.integers(-2**31, 2**31 - 1), correlation_id=st.integers(0, 2**31 - 1))
def test_a_produce_answer_is_read_as_aiokafka_reads_it(
        version: int, topics: Any, throttle: int, correlation_id: int) -> None:
    stock_request = ProduceRequest(None, -1, 1000, []).build(STOCK_REQUESTS[version])
    lean_request = LeanProduceRequest(None, -1, 1000, []).prepare({0: (0, version)})
    body = stock_request.RESPONSE_TYPE(topics, throttle).encode()
    frame = ResponseHeader_v0(correlation_id).encode() + body
    stock_frame, lean_frame = BytesIO(frame), BytesIO(frame)
    assert (lean_request.parse_response_header(lean_frame).correlation_id
            == stock_request.parse_response_header(stock_frame).correlation_id == correlation_id)
    stock, lean = stock_request.RESPONSE_TYPE.decode(stock_frame), lean_request.RESPONSE_TYPE.decode(lean_frame)
    assert lean.API_VERSION == stock.API_VERSION == version
    assert (lean.topics, lean.throttle_time_ms) == (stock.topics, stock.throttle_time_ms)
    assert [[tuple(p) for p in ps or ()] for _, ps in lean.topics or ()] == \
        [[tuple(p) for p in ps or ()] for _, ps in stock.topics or ()]


def test_other_versions_are_written_and_read_as_aiokafka_does() -> None:
    request = LeanProduceRequest(None, -1, 1000, [("t", [(0, bytearray(b"x"))])])
    for version in (2, 3, 4):
        assert type(request.prepare({0: (0, version)})) is STOCK_REQUESTS[version]


def test_the_workers_producer_writes_its_requests_with_struct(tmp_path: Path) -> None:
    async def go() -> None:
        app = make_app("lean-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
        producer: Any = app.producer
        aio = producer._new_producer()
        try:
            assert isinstance(aio, LeanAIOKafkaProducer) and isinstance(aio._sender, LeanSender)
        finally:
            await aio.client.close()

    asyncio.run(go())
