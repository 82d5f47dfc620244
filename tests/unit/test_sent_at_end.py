"""An agent's batch of outputs written as the batch ends, in the agent's own turn of the event loop
(`bus.upstream.lean_produce.sent_at_end`, `LeanSender.write_now`), without waking the producer's
sender loop; and aiokafka's guarantees kept: one request per node in flight, each partition's
batches in order, a full batch, a partition without a leader, a lingering producer going the
usual way, every failure seen by the delivery guard. On the test connection of
`tests/unit/test_lean_sender.py`, which records what is written and answers as the test says."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.structs import PartitionMetadata, TopicPartition

from bus.kafka.delivery import DeliveryFailed, DeliveryGuard
from bus.upstream.lean_produce import AppendState, LeanAIOKafkaProducer, LeanSender, Output, send_outputs, sent_at_end
from tests.unit.test_lean_sender import MESSAGE_TOO_LARGE, TOPIC, Connection, run, turns, until

#: A topic whose partitions have no leader known.
LEADERLESS = "referrals.b"


class Worker:
    """The worker's producer as `send_outputs` finds it: the bus's aiokafka producer inside, and the
    usual `send` (faust's, watched by the guard), recorded with the requests written before it."""

    def __init__(self, aio: LeanAIOKafkaProducer, guard: DeliveryGuard, conn: Connection) -> None:
        self._producer, self.guard, self.conn = aio, guard, conn
        self.appends = AppendState()
        #: (value, requests written before it, whether a `sent_at_end` block held appends meanwhile)
        self.usual: list[tuple[bytes | None, int, bool]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None, *_: Any) -> asyncio.Future[Any]:
        self.usual.append((value, len(self.conn.written), self.appends.held))
        future: asyncio.Future[Any] = await self._producer.send(topic, value, key=key)
        self.guard.track(future)
        return future


def worker_app(aio: LeanAIOKafkaProducer, conn: Connection) -> Any:
    guard = DeliveryGuard()
    return SimpleNamespace(producer=Worker(aio, guard, conn), delivery_guard=guard)


def outputs(*values: bytes, key: bytes = b"k", topic: str = TOPIC) -> list[Output]:
    return [(topic, key, value) for value in values]


def loop_woken(aio: LeanAIOKafkaProducer) -> bool:
    """Whether the sender loop's waiter is resolved: the loop wakes in the next turn."""
    return bool(aio._message_accumulator.waiter().done())


def test_the_batchs_request_is_written_as_the_block_ends_without_waking_the_sender_loop() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: Connection) -> None:
        app = worker_app(aio, conn)
        await turns()  # the loop waits for data
        with sent_at_end(app):
            await send_outputs(app, outputs(b"a", b"b"))
            await send_outputs(app, outputs(b"c", key=b"other"))
            assert not conn.written and not loop_woken(aio)  # held until the batch ends
        # Written at once, in this turn, one request for the node; the loop not woken for it.
        assert len(conn.written) == 1 and not loop_woken(aio) and not sender._tasks
        (request,) = conn.in_flight()
        assert sorted(v for values in request.values() for v in values if v) == [b"a", b"b", b"c"]
        assert not app.producer.usual and app.delivery_guard.pending == len(request)
        conn.answer(offset=4)
        await turns()
        app.delivery_guard.raise_if_failed()
        assert not sender._in_flight and not sender._muted_partitions and not aio._message_accumulator._batches

    run(test)


def test_without_the_block_the_sender_loop_writes_as_before() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: Connection) -> None:
        app = worker_app(aio, conn)
        await turns()
        await send_outputs(app, outputs(b"a"))
        assert loop_woken(aio) and not conn.written
        await turns()
        assert conn.in_flight() and len(conn.written) == 1

    run(test)


def test_a_node_in_flight_keeps_its_partitions_order_the_next_batch_goes_once_it_is_answered() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: Connection) -> None:
        app = worker_app(aio, conn)
        await turns()
        with sent_at_end(app):
            await send_outputs(app, outputs(b"a"))
        with sent_at_end(app):
            await send_outputs(app, outputs(b"b"))
        (first,) = conn.in_flight()  # one request per node in flight: the second batch waits
        (partition,) = first
        assert first == {partition: [b"a"]} and TopicPartition(TOPIC, partition) in sender._muted_partitions
        conn.answer(offset=1)
        await turns()  # the answer frees the node, which wakes the loop for what waited
        assert conn.in_flight() == [{partition: [b"b"]}]
        conn.answer(offset=2)
        await turns()
        app.delivery_guard.raise_if_failed()

    run(test)


def test_a_full_batch_takes_the_usual_path_after_what_the_block_held_is_written() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: Connection) -> None:
        app = worker_app(aio, conn)
        await turns()
        big = b"x" * 300  # two do not fit in one batch of 400 bytes
        with sent_at_end(app):
            await send_outputs(app, outputs(b"1" + big, b"2" + big, b"3"))
        # The first message's batch was written before the second took the usual path (aiokafka's
        # send, which opened a batch of its own and woke the loop), and the third joined that batch.
        # Nothing was held while it could wait.
        assert app.producer.usual == [(b"2" + big, 1, False)]
        (first,) = conn.in_flight()
        assert list(first.values()) == [[b"1" + big]]
        conn.answer(offset=0)
        await until(lambda: len(conn.written) == 2)
        assert [list(r.values()) for r in conn.in_flight()] == [[[b"2" + big, b"3"]]]
        conn.answer(offset=1)
        await turns()
        app.delivery_guard.raise_if_failed()

    run(test, max_batch_size=400)


def test_a_failed_batch_written_at_the_end_fails_the_guard_at_once() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: Connection) -> None:
        app = worker_app(aio, conn)
        told: list[DeliveryFailed] = []
        app.delivery_guard.on_failure = told.append
        await turns()
        with sent_at_end(app):
            await send_outputs(app, outputs(b"a"))
        ((partition, _),) = conn.in_flight()[0].items()
        conn.answer({partition: MESSAGE_TOO_LARGE})
        await turns()
        assert len(told) == 1 and isinstance(told[0].__cause__, MessageSizeTooLargeError)
        with pytest.raises(DeliveryFailed):
            app.delivery_guard.raise_if_failed()

    run(test)


def test_what_was_appended_is_written_when_the_block_ends_by_an_exception() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: Connection) -> None:
        app = worker_app(aio, conn)
        await turns()
        with pytest.raises(ValueError), sent_at_end(app):
            await send_outputs(app, outputs(b"a"))
            raise ValueError("the agent failed midway")
        assert [list(r.values()) for r in conn.in_flight()] == [[[b"a"]]]

    run(test)


def test_a_partition_without_a_leader_is_left_to_the_sender_loop_which_updates_the_metadata() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: Connection) -> None:
        aio.client.cluster._partitions = {
            **aio.client.cluster._partitions,
            LEADERLESS: {p: PartitionMetadata(LEADERLESS, p, -1, [0], [0], None) for p in range(4)}}
        app = worker_app(aio, conn)
        await turns()
        with sent_at_end(app):
            await send_outputs(app, outputs(b"a") + outputs(b"b", topic=LEADERLESS))
        assert [list(r.values()) for r in conn.in_flight()] == [[[b"a"]]]  # what could go, went
        assert loop_woken(aio)  # the loop, for the partition without a leader
        await turns()
        assert aio.metadata_updates >= 1

    run(test)


def test_a_lingering_producer_keeps_its_linger() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: Connection) -> None:
        app = worker_app(aio, conn)
        await turns()
        with sent_at_end(app):
            await send_outputs(app, outputs(b"a"))
        assert not conn.written and loop_woken(aio)  # the loop's way: it waits out the linger
        await until(lambda: bool(conn.written))

    run(test, linger_ms=30)


def test_a_bug_writing_at_the_end_fails_every_batch_through_the_sender_not_the_agent() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: Connection) -> None:
        app = worker_app(aio, conn)
        told: list[DeliveryFailed] = []
        app.delivery_guard.on_failure = told.append
        await turns()

        def broken(node_id: int, batches: Any) -> bool:
            raise RuntimeError("a bug")

        sender._write_produce_req = broken  # type: ignore[method-assign]
        with sent_at_end(app):  # does not raise here
            await send_outputs(app, outputs(b"a"))
        await until(lambda: sender.sender_task.done())
        assert isinstance(sender.sender_task.exception(), KafkaError)
        await turns()
        assert len(told) == 1 and not aio._message_accumulator._pending_batches

    run(test)
