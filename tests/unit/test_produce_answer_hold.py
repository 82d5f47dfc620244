"""Produce answers read when the worker wakes anyway (`bus.upstream.lean_produce.ProduceAnswerHold`):
once the sender writes a produce request, its connection stops reading; it reads again when a
fetch answer comes (the lean fetch's `on_answer`), when something waits on deliveries (the
producer's flush and stop, a request timeout check) and at the latest after the hold's
`max_hold_s`; never on a connection the worker fetches on. On this test's connection
(`tests/unit/test_lean_sender.py`), whose transport keeps an answer that arrives while reading
is paused until reading resumes, as a socket's buffer does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.protocol.fetch import FetchResponse_v4

from bus.kafka.delivery import DeliveryFailed, DeliveryGuard
from bus.upstream.lean_fetch import LeanFetch
from bus.upstream.lean_produce import LeanAIOKafkaProducer, LeanSender, ProduceAnswerHold
from tests.unit.test_lean_sender import MESSAGE_TOO_LARGE, Connection, results, run, send, turns, until

#: Longer than any test: only what the test does releases the hold.
FOREVER_S = 3600.0


class Transport:
    """A connection's transport: reading paused or not; an answer that arrives while paused waits
    (the kernel's buffer) and is read once reading resumes."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.reading = True
        self.waiting: list[dict[int, int] | None] = []
        self.pauses = 0

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True
        waiting, self.waiting = self.waiting, []
        for errors in waiting:  # read in the loop's next turn, as a ready socket is
            asyncio.get_running_loop().call_soon(self.conn.answer, errors)

    def arrive(self, errors: dict[int, int] | None = None) -> None:
        """The broker's answer to the oldest request reaches the socket."""
        if self.reading:
            self.conn.answer(errors)
        else:
            self.waiting.append(errors)


class HeldConnection(Connection):
    def __init__(self) -> None:
        super().__init__()
        self.transport = Transport(self)


Test = Callable[[LeanAIOKafkaProducer, LeanSender, HeldConnection, ProduceAnswerHold], Awaitable[None]]


def run_held(test: Test, max_hold_s: float = FOREVER_S, **options: Any) -> None:
    """`test` with `run`'s producer, its sender holding answers on a `HeldConnection`."""

    async def go(aio: LeanAIOKafkaProducer, sender: LeanSender, plain: Connection) -> None:
        conn = HeldConnection()
        for key, value in list(aio.client._conns.items()):
            if value is plain:
                aio.client._conns[key] = conn
        hold = ProduceAnswerHold(asyncio.get_running_loop(), max_hold_s)
        sender.answer_hold = hold
        await test(aio, sender, conn, hold)

    run(go, **options)


def test_a_written_produce_request_stops_its_connection_reading_until_a_fetch_answer_comes() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: HeldConnection,
                   hold: ProduceAnswerHold) -> None:
        sent = await send(aio, 0, b"a")
        await turns()
        assert len(conn.written) == 1 and not conn.transport.reading and hold.held == [conn]
        conn.transport.arrive()  # the answer comes while the worker sleeps: not read
        await turns()
        assert not sent[0].done()
        fetch = LeanFetch(SimpleNamespace(_loop=None, _client=None))
        fetch.on_answer = hold.release
        # A fetch answer is read (the connection's reader decodes it): the worker is awake.
        fetch.answered(FetchResponse_v4, FetchResponse_v4(0, [("events.inbound", [(0, 0, 5, 5, [], b"")])]).encode())
        assert conn.transport.reading and not hold.held
        await turns()
        assert results(sent) == [0] and hold.holds == 1 and hold.releases == 1

    run_held(test)


def test_without_a_hold_answers_are_read_as_they_come() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: HeldConnection,
                   hold: ProduceAnswerHold) -> None:
        sender.answer_hold = None
        sent = await send(aio, 0, b"a")
        await turns()
        assert conn.transport.reading and conn.transport.pauses == 0
        conn.transport.arrive()
        await turns()
        assert results(sent) == [0]

    run_held(test)


def test_a_held_answer_is_read_at_the_latest_after_the_hold_and_a_failure_trips_the_guard() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: HeldConnection,
                   hold: ProduceAnswerHold) -> None:
        told: list[DeliveryFailed] = []
        guard = DeliveryGuard(on_failure=told.append)
        refused = await send(aio, 1, b"b")
        guard.track(refused[0])
        await turns()
        conn.transport.arrive({1: MESSAGE_TOO_LARGE})
        await turns()
        assert not refused[0].done() and not told
        await until(lambda: refused[0].done())  # nothing else wakes the worker: the hold's timer
        assert isinstance(refused[0].exception(), MessageSizeTooLargeError)
        await turns()
        assert len(told) == 1 and hold.timer is None and not hold.held

    run_held(test, max_hold_s=0.05)


def test_flush_reads_the_held_answers_first() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: HeldConnection,
                   hold: ProduceAnswerHold) -> None:
        sent = await send(aio, 0, b"a", b"b")
        await turns()
        conn.transport.arrive()
        await asyncio.wait_for(aio.flush(), timeout=5)
        assert results(sent) == [0, 1]

    run_held(test)


def test_stop_reads_the_held_answers_and_holds_no_more() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: HeldConnection,
                   hold: ProduceAnswerHold) -> None:
        sent = await send(aio, 0, b"a")
        await turns()
        conn.transport.arrive()
        stopping = asyncio.ensure_future(aio.stop())
        await until(lambda: sent[0].done())
        assert results(sent) == [0] and sender.answer_hold is None and conn.transport.reading
        stopping.cancel()  # (the test's client has no broker to close)

    run_held(test)


def test_a_request_timeout_check_reads_the_held_answers_before_it_times_any_out() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: HeldConnection,
                   hold: ProduceAnswerHold) -> None:
        sent = await send(aio, 0, b"a")
        await turns()
        conn.transport.arrive()  # in time, but held past the request's deadline
        await until(lambda: sent[0].done())
        assert results(sent) == [0] and conn.closed is None

    run_held(test, request_timeout_ms=50)


def test_a_connection_the_worker_fetches_on_is_never_held() -> None:
    async def test(aio: LeanAIOKafkaProducer, sender: LeanSender, conn: HeldConnection,
                   hold: ProduceAnswerHold) -> None:
        hold.fetch_connections = lambda: (conn,)  # the same connection as the fetch's
        sent = await send(aio, 0, b"a")
        await turns()
        assert conn.transport.reading and conn.transport.pauses == 0 and not hold.held
        assert hold.timer is None
        conn.transport.arrive()
        await turns()
        assert results(sent) == [0]

    run_held(test)
