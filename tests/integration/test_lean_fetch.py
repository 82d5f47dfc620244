"""The lean fetch (`bus/upstream/lean_fetch.py`) on the real broker: it hands over the records
aiokafka's own fetcher hands over, in the same order, with the same positions and high
watermarks, and leaves everything but the steady state to aiokafka's loop: an assignment change,
a seek, a pause; while fetched records wait to be consumed, it holds their node back as aiokafka's
loop does; while answers are empty and nothing changes, the connection's reader asks again and
keeps each partition's state as aiokafka's handling of the answer would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bus.settings import KafkaSettings
from bus.upstream import lean_fetch
from topics.catalog import EVENTS

PARTS = [TopicPartition(EVENTS.name, p) for p in range(EVENTS.partitions)]


async def _consumer(kafka: KafkaSettings, parts: list[TopicPartition], lean: bool) -> tuple[AIOKafkaConsumer, Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=kafka.fetch_max_wait_ms, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign(parts)
    return consumer, lean_fetch.install(consumer) if lean else None


@asynccontextmanager
async def _side_by_side(kafka: KafkaSettings) -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer,
                                                                     AIOKafkaConsumer, Any]]:
    """A producer, a plain aiokafka consumer and one with the lean fetch (and its state), each
    assigned every partition of the events topic."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    plain, _ = await _consumer(kafka, PARTS, lean=False)
    lean, state = await _consumer(kafka, PARTS, lean=True)
    try:
        yield producer, plain, lean, state
    finally:
        await lean.stop()
        await plain.stop()
        await producer.stop()


async def _read(consumer: AIOKafkaConsumer, count: int, timeout: float = 20) -> list[tuple[int, int, bytes]]:
    """The next `count` records (partition, offset, value), in the order the consumer hands them over."""
    got: list[tuple[int, int, bytes]] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                got += [(tp.partition, r.offset, r.value or b"") for r in records]
    return got


def _by_partition(records: list[tuple[int, int, bytes]]) -> dict[int, list[tuple[int, bytes]]]:
    out: dict[int, list[tuple[int, bytes]]] = {}
    for partition, offset, value in records:
        out.setdefault(partition, []).append((offset, value))
    return out


async def _produce(producer: AIOKafkaProducer, start: int, count: int, partitions: range) -> None:
    futures = [await producer.send(EVENTS.name, b"%d" % i, partition=partitions[i % len(partitions)])
               for i in range(start, start + count)]
    await asyncio.gather(*futures)


async def test_the_lean_fetch_hands_over_what_aiokafkas_fetcher_hands_over(kafka: KafkaSettings) -> None:
    async def run() -> None:
        async with _side_by_side(kafka) as (producer, plain, lean, state):
            await _produce(producer, 0, 40, range(4))
            expected, got = await _read(plain, 40), await _read(lean, 40)
            # Quiet, then records trickle in a few at a time between empty polls.
            for start in range(40, 100, 6):
                await asyncio.sleep(0.05)
                await _produce(producer, start, 6, range(4))
                expected += await _read(plain, 6)
                got += await _read(lean, 6)
            assert _by_partition(got) == _by_partition(expected)
            assert sorted(v for _, _, v in got) == sorted(b"%d" % i for i in range(100))
            await asyncio.sleep(0.3)  # a few empty polls more, to have the high watermarks of both
            for tp in PARTS:
                assert await lean.position(tp) == await plain.position(tp) == 25
                assert lean.highwater(tp) == plain.highwater(tp) == 25
            # The short paths were the ones taken: round trips, waits for records to be consumed,
            # answers read with struct.
            assert state.lean_round_trips > 10 and state.reused > 0 and state.asked_again > 0
            assert state.consume_waits > 0 and state.fast_decoded > 0

    await run()


async def test_the_lean_fetch_leaves_assignment_changes_seeks_and_pauses_to_aiokafka(kafka: KafkaSettings) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        await producer.start()
        consumer, state = await _consumer(kafka, PARTS[:2], lean=True)
        try:
            await _produce(producer, 0, 8, range(4))  # two records on each partition
            assert sorted(await _read(consumer, 4)) == [(0, 0, b"0"), (0, 1, b"4"), (1, 0, b"1"), (1, 1, b"5")]
            await asyncio.sleep(0.2)
            steady = state.lean_round_trips

            # A new assignment: the fetch in flight is dropped, aiokafka's loop resets positions.
            turns = state.loop_turns
            consumer.assign(PARTS)
            assert sorted(await _read(consumer, 8)) == sorted((i % 4, i // 4, b"%d" % i) for i in range(8))
            assert state.loop_turns > turns

            # A seek back to an offset: read again, from the offset asked for (a position like
            # any other, which the short path fetches from).
            await asyncio.sleep(0.2)
            consumer.seek(PARTS[3], 0)
            assert await _read(consumer, 2) == [(3, 0, b"3"), (3, 1, b"7")]
            # A seek to the beginning: the position is reset by aiokafka's loop, then read again.
            await asyncio.sleep(0.2)
            turns = state.loop_turns
            await consumer.seek_to_beginning(PARTS[3])
            assert await _read(consumer, 2) == [(3, 0, b"3"), (3, 1, b"7")]
            assert state.loop_turns > turns

            # A paused partition is not fetched until it is resumed.
            consumer.pause(PARTS[2])
            await _produce(producer, 8, 8, range(4))
            got = await _read(consumer, 6)
            assert sorted(p for p, _, _ in got) == [0, 0, 1, 1, 3, 3]
            await asyncio.sleep(0.3)
            assert not any((await consumer.getmany(timeout_ms=100)).values())
            assert consumer.highwater(PARTS[2]) == 2  # not fetched since the pause (4 records now)
            consumer.resume(PARTS[2])
            assert await _read(consumer, 2) == [(2, 2, b"10"), (2, 3, b"14")]
            await asyncio.sleep(0.2)
            assert state.lean_round_trips > steady  # and back on the short path
        finally:
            await consumer.stop()
            await producer.stop()

    await run()


async def test_a_lean_fetch_the_broker_does_not_answer_times_out_and_reading_goes_on(
        kafka: KafkaSettings, broker: Any) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        await producer.start()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=None,
                                    enable_auto_commit=False, fetch_max_wait_ms=kafka.fetch_max_wait_ms,
                                    auto_offset_reset="earliest", request_timeout_ms=1500)
        await consumer.start()
        consumer.assign(PARTS)
        state = lean_fetch.install(consumer)
        try:
            await _produce(producer, 0, 4, range(4))
            assert len(await _read(consumer, 4)) == 4
            conn = consumer._client._conns[next(iter(consumer._client._conns))]
            broker.freeze()
            try:
                await asyncio.sleep(2.5)  # past the request timeout: the connection is closed
            finally:
                broker.thaw()
            assert not conn.connected()
            await _produce(producer, 4, 4, range(4))
            assert sorted(v for _, _, v in await _read(consumer, 4)) == [b"4", b"5", b"6", b"7"]
            assert state.lean_round_trips > 0
        finally:
            await consumer.stop()
            await producer.stop()

    await run()


async def _until(holds: Any, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not holds():
            await asyncio.sleep(0.01)


def _waiting(consumer: AIOKafkaConsumer) -> set[int]:
    """The partitions whose fetched records wait to be consumed."""
    fetcher: Any = consumer._fetcher
    return {tp.partition for tp in fetcher._records}


async def test_records_waiting_to_be_consumed_hold_back_their_node_as_in_aiokafkas_loop(kafka: KafkaSettings) -> None:
    async def run() -> None:
        async with _side_by_side(kafka) as (producer, plain, lean, state):
            # Records fetched and not consumed: nothing more is fetched until they are, or until
            # their backoff (aiokafka's prefetch backoff, 0.1 s) has passed, after which the other
            # partitions are fetched again, by aiokafka's loop.
            await _produce(producer, 0, 1, range(0, 1))
            await _until(lambda: _waiting(plain) == _waiting(lean) == {0})
            waits = state.consume_waits
            await _produce(producer, 1, 1, range(1, 2))
            await _until(lambda: _waiting(plain) == _waiting(lean) == {0, 1})
            assert state.consume_waits > waits
            assert _by_partition(await _read(lean, 2)) == _by_partition(await _read(plain, 2))

            # A wait that would outlast the test ends as soon as what it waits on changes: a seek
            # (aiokafka's own notice), a new assignment (the lean fetch's watch on it).
            for consumer in (plain, lean):
                consumer._fetcher._prefetch_backoff = 600
            await _produce(producer, 2, 1, range(2, 3))
            await _until(lambda: _waiting(plain) == _waiting(lean) == {2})
            for consumer in (plain, lean):
                consumer.seek(PARTS[0], 0)
            assert sorted(await _read(lean, 2)) == sorted(await _read(plain, 2)) == [(0, 0, b"0"), (2, 0, b"2")]
            await _produce(producer, 3, 1, range(2, 3))
            await _until(lambda: _waiting(plain) == _waiting(lean) == {2})
            for consumer in (plain, lean):
                consumer.assign(PARTS[3:])
            await _produce(producer, 4, 1, range(3, 4))
            # Nothing consumed meanwhile (consuming would end the wait too): the new assignment's
            # records are fetched all the same.
            await _until(lambda: _waiting(plain) == _waiting(lean) == {3})
            assert await _read(lean, 1) == await _read(plain, 1) == [(3, 0, b"4")]

    await run()


async def test_empty_answers_are_asked_again_as_long_as_the_routine_would_ask_the_same(kafka: KafkaSettings) -> None:
    """The reader asks again with the routine asleep; what aiokafka's handling of each answer
    keeps goes on being kept (the high watermarks, and each partition's time of its last fetch,
    which faust's check for a stalled fetch reads), and a change the routine would act on (here a
    new fetch wait, as the bus's workers set it when their topics go quiet) ends it."""
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        await producer.start()
        consumer, state = await _consumer(kafka, PARTS, lean=True)
        try:
            await _produce(producer, 0, 4, range(4))
            assert len(await _read(consumer, 4)) == 4
            assignment: Any = consumer._subscription.subscription.assignment
            await _until(lambda: state.asked_again > 5)
            asked, turns = state.asked_again, state.lean_round_trips - state.asked_again
            fetched_at = {tp: assignment.state_value(tp).timestamp for tp in PARTS}
            await _until(lambda: state.asked_again > asked + 5)
            assert all(assignment.state_value(tp).timestamp > fetched_at[tp] for tp in PARTS)
            assert all(consumer.highwater(tp) == 1 for tp in PARTS)
            assert state.lean_round_trips - state.asked_again == turns  # the routine slept through

            fetcher: Any = consumer._fetcher
            fetcher._fetch_max_wait_ms = 40
            await _until(lambda: state._round is not None and state._round.request.layout[0] == 40)
            asked = state.asked_again
            await _until(lambda: state.asked_again > asked)  # and asked again at the new wait
            assert state._round.request.layout[0] == 40
            await _produce(producer, 4, 4, range(4))
            assert sorted(v for _, _, v in await _read(consumer, 4)) == [b"4", b"5", b"6", b"7"]
        finally:
            await consumer.stop()
            await producer.stop()

    await run()
