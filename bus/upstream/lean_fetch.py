"""A leaner steady state for aiokafka's fetcher: one coroutine, the same request's bytes, the
same empty answer's decoding.

An empty fetch round trip costs aiokafka 0.5-0.7 ms of CPU on these machines, all of it Python
(docs/benchmarks.md, n-transport): its background routine works out what to ask each node for,
builds and encodes a new Fetch request, starts a task to send it and races that task, the
consumer's signals and a timer in `asyncio.wait`; the connection encodes the header, arms a
timeout, and decodes the answer field by field. At the bus's 10 ms fetch wait that is 6-10 % of
a core before any work. Between two empty polls nothing of it changes but the correlation id.

`install(consumer)` replaces the started consumer's fetch routine with `LeanFetch.routine`,
aiokafka's own loop with one short path: in the steady state (an active assignment, every
partition with a position, none paused, nothing fetched and not yet consumed, no request in
flight, every partition led by one node) the routine awaits aiokafka's own
`_proc_fetch_request` itself, without a task or a wait, with a request whose bytes are encoded
once for as long as the positions and the wait stay the same (`LeanFetchRequest`), written to
the node's connection directly and answered through the connection's own reader, where an
answer whose bytes equal the last empty answer's is not decoded again (`_AnswerReader`) and any
other is read with `struct` (`fetch_answers`). While the answers are that empty answer again and
the routine would only send the same request again, the reader sends it itself and keeps what
aiokafka's handling of the answer would keep (`LeanFetch.answered`): the routine sleeps through
the quiet round trips, one event-loop turn and one task wake-up less each. While the records an
answer brought wait to be consumed, the routine waits for that as aiokafka's loop does (for the
consumer's notice, the assignment's end or the records' backoff), on the notice's future alone,
without working out every partition's action and an `asyncio.wait`. Anything else (assignment
changes, resets, pauses, records left unconsumed past their backoff, errors, missing leaders,
several nodes) goes round aiokafka's loop as before, and so does the handling of every answer the
routine sees: positions, high watermarks, errors and fetch waiters are aiokafka's code.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import random
import struct
import time
from collections.abc import Callable
from itertools import chain
from typing import Any, NamedTuple

import aiokafka.errors as Errors
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.client import ConnectionGroup
from aiokafka.conn import CloseReason
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.util import create_future, create_task

from bus.upstream.fetch_answers import decode_fetch_answer
from bus.upstream.registry import NO_ISSUE, workaround

_FETCHER = "aiokafka.consumer.fetcher:Fetcher"
_CONN = "aiokafka.conn:AIOKafkaConnection"

#: Where the correlation id sits in a request frame: after its size (4 bytes), the API key and
#: the API version (2 each).
_CORRELATION_AT = 8
#: An empty answer bigger than this is not kept for the next comparison (a fetch of very many
#: partitions; comparing costs little, keeping a large copy is not worth it).
MEMO_MAX_BYTES = 16_384


class _Header(NamedTuple):
    correlation_id: int


class LeanFetchRequest(FetchRequest):  # type: ignore[misc]  # aiokafka.protocol is untyped here
    """aiokafka's Fetch request, with what its frame is made of: `layout` (the wait and the
    partitions in order) and the fetch `offsets` in that order. Requests of the same layout
    share one encoded frame (`_Template`), re-sent with the offsets and correlation id written in."""

    def __init__(self, max_wait_time: int, min_bytes: int, max_bytes: int, isolation_level: int,
                 topics: list[tuple[str, list[tuple[int, int, int]]]], rack_id: str = "") -> None:
        super().__init__(max_wait_time, min_bytes, max_bytes, isolation_level, topics, rack_id=rack_id)
        self.layout = (max_wait_time, min_bytes, max_bytes, isolation_level, rack_id,
                       tuple((topic, tuple((p, b) for p, _, b in parts)) for topic, parts in topics))
        self.offsets = [offset for _, parts in topics for _, offset, _ in parts]

    def with_offsets(self, offsets: list[int]) -> FetchRequest:
        """aiokafka's FetchRequest of this layout at `offsets`."""
        wait, least, most, isolation, rack, layout = self.layout
        at = iter(offsets)
        return FetchRequest(wait, least, most, isolation,
                            [(topic, [(p, next(at), b) for p, b in parts]) for topic, parts in layout],
                            rack_id=rack)


#: Stand-in fetch offsets whose bytes find where each partition's offset sits in an encoded frame.
_MARK = 0x5A17_F37C_0000_0000


class _Template:
    """A connection's encoded frame for one request layout, and where each offset sits in it."""

    __slots__ = ("at", "conn", "frame", "layout", "request_struct")

    def __init__(self, conn: Any, request: LeanFetchRequest) -> None:
        self.conn, self.layout = conn, request.layout
        marked = request.with_offsets([_MARK + i for i in range(len(request.offsets))])
        self.request_struct, self.frame = _encode(conn, marked)
        at = [self.frame.find(struct.pack(">q", _MARK + i)) for i in range(len(request.offsets))]
        unique = all(self.frame.count(struct.pack(">q", _MARK + i)) == 1 for i in range(len(at)))
        self.at: list[int] | None = at if unique else None

    def frame_for(self, request: LeanFetchRequest) -> bytearray:
        """The frame of `request` (this template's layout), correlation id to be written."""
        if self.at is None:  # not seen in the frame: encoded whole, as aiokafka does
            self.request_struct, self.frame = _encode(self.conn, request)
            return self.frame
        for at, offset in zip(self.at, request.offsets, strict=True):
            struct.pack_into(">q", self.frame, at, offset)
        return self.frame


def _encode(conn: Any, request: FetchRequest) -> tuple[Any, bytearray]:
    """(request struct, size-prefixed frame with correlation id 0), as `AIOKafkaConnection.send`
    encodes `request` for `conn`."""
    request_struct = request.prepare(conn._versions)
    header = request_struct.build_request_header(correlation_id=0, client_id=conn._client_id)
    message = header.encode() + request_struct.encode()
    return request_struct, bytearray(struct.pack(">i", len(message)) + message)


class _AnswerReader:
    """What a connection's reader is given in place of the request struct for a lean fetch:
    `_handle_frame` parses the answer's header with it and decodes the answer with its
    `RESPONSE_TYPE.decode`. An answer whose bytes equal the last empty answer's is that answer's
    decoding (decoding is a function of the bytes; aiokafka only reads the result)."""

    __slots__ = ("RESPONSE_TYPE", "_lean", "_struct")

    def __init__(self, lean: LeanFetch, request_struct: Any) -> None:
        self._lean = lean
        self._struct = request_struct
        self.RESPONSE_TYPE = self

    def parse_response_header(self, buffer: io.BytesIO) -> Any:
        if self._struct.FLEXIBLE_VERSION:
            return self._struct.parse_response_header(buffer)
        return _Header(int.from_bytes(buffer.read(4), "big", signed=True))

    def decode(self, buffer: io.BytesIO) -> Any:
        return self._lean.answered(self._struct.RESPONSE_TYPE, buffer.read())


#: What the reader hands `_Pending` for an answer the routine need not see (`LeanFetch.answered`).
_ASKED_AGAIN: Any = object()


class _Pending:
    """What a connection's reader is given in place of the future of a lean fetch: the routine's
    future (`answer`), resolved only with an answer the routine must see. An empty answer like
    the last one, while nothing else has changed, is not: the reader asks again at once
    (`LeanFetch.answered`), and the routine sleeps on through the round trip."""

    __slots__ = ("answer",)

    def __init__(self, answer: asyncio.Future[Any]) -> None:
        self.answer = answer

    def done(self) -> bool:
        return self.answer.done()

    def set_result(self, result: Any) -> None:
        if result is not _ASKED_AGAIN and not self.answer.done():
            self.answer.set_result(result)

    def set_exception(self, exc: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class _Round:
    """The routine's lean fetch in flight: what the reader needs to ask the same again."""

    __slots__ = ("answer", "assignment", "conn", "expiry", "frame", "node", "pending", "reader", "request",
                 "sent_at")

    def __init__(self, conn: Any, node: int, assignment: Any, request: LeanFetchRequest, frame: bytearray,
                 reader: _AnswerReader, answer: asyncio.Future[Any]) -> None:
        self.conn, self.node, self.assignment, self.request, self.frame = conn, node, assignment, request, frame
        self.reader, self.answer, self.pending = reader, answer, _Pending(answer)
        #: When it last asked (the loop's clock), and the timer of its request timeout (`_expire`).
        self.sent_at = 0.0
        self.expiry: asyncio.TimerHandle | None = None


class _FetcherClient:
    """The fetcher's view of the client: its own `send` for lean fetches, the client for the rest."""

    def __init__(self, client: Any, lean: LeanFetch) -> None:
        self._real = client
        self._lean = lean

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def send(self, node_id: int, request: Any, **kwargs: Any) -> Any:
        if type(request) is LeanFetchRequest and not kwargs:
            conn = self._real._conns.get((node_id, ConnectionGroup.DEFAULT))
            if conn is not None and conn.connected():
                return await self._lean.send(conn, node_id, request)
        return await self._real.send(node_id, request, **kwargs)


class LeanFetch:
    """The lean routine of one aiokafka `Fetcher` and its memo (see the module's docstring)."""

    def __init__(self, fetcher: Any) -> None:
        self.fetcher = fetcher
        self.client: Any = fetcher._client
        self.loop: asyncio.AbstractEventLoop = fetcher._loop
        #: Round trips taken by the short path and turns of aiokafka's loop (for tests and
        #: benchmarks).
        self.lean_round_trips = 0
        self.consume_waits = 0
        self.loop_turns = 0
        #: Answers decoded (of which read with `struct`) and answers recognised as the last empty one.
        self.decoded = 0
        self.fast_decoded = 0
        self.reused = 0
        #: Round trips asked again by the connection's reader, the routine asleep (`answered`).
        self.asked_again = 0
        #: The Fetch answer type of the version its connection negotiated (once it has sent).
        self.answer_type: type | None = None
        self._request_key: tuple[Any, ...] | None = None
        self._request: LeanFetchRequest | None = None
        self._order: list[Any] = []
        self._order_key: tuple[Any, ...] | None = None
        self._template: _Template | None = None
        self._empty: _EmptyAnswer | None = None
        self._in_flight: asyncio.Future[Any] | None = None
        self._round: _Round | None = None
        #: The assignment the routine's next lean fetch is for.
        self._assignment: Any = None
        self._watched: Any = None

    # ---- the request ------------------------------------------------------------------------

    def steady_request(self, assignment: Any, sending: int | None = None,
                       ) -> tuple[int, LeanFetchRequest] | float | None:
        """What aiokafka's `_get_actions_per_node` would have the loop do for `assignment`, if it
        is one of the steady state's two actions: the one Fetch request it would build if it
        would build nothing else (no reset, no missing leader, no pause, no records waiting, no
        request in flight, one node), as (node, request); or, while records fetched wait to be
        consumed and hold their node back (a positive backoff), no request and the wait's
        timeout, as a float. Else None (aiokafka's loop decides). `sending`: the node of the lean
        fetch in flight, asked from its answer whether to fetch the same again (`answered`)."""
        fetcher = self.fetcher
        in_flight = fetcher._in_flight
        if fetcher._pending_tasks or (in_flight and (sending is None or len(in_flight) > 1
                                                     or sending not in in_flight)):
            return None
        waiting = fetcher._records
        node: int | None = None
        positions = []
        backoff = 0.0
        # Without a preferred read replica (KIP-392) to look up, `_select_read_replica` is the leader.
        leader_of = (self.client.cluster.leader_for_partition if not fetcher._preferred_read_replica
                     else fetcher._select_read_replica)
        for tp in assignment.tps:
            leader = leader_of(tp)
            if leader is None or leader == -1 or (node is not None and leader != node):
                return None
            node = leader
            if waiting and tp in waiting:
                backoff = max(backoff, waiting[tp].calculate_backoff())
                continue
            state = assignment.state_value(tp)
            if not state.has_valid_position or state.paused:
                return None
            positions.append((tp, state.position))
        if node is None:
            return None
        if waiting:  # a backoff of 0: aiokafka fetches the other partitions, its own way
            return backoff or None
        key = (node, fetcher._fetch_max_wait_ms, *positions)
        if key != self._request_key or self._request is None:
            self._request = self._build(assignment, node, dict(positions))
            self._request_key = key
        return node, self._request

    def _build(self, assignment: Any, node: int, positions: dict[Any, int]) -> LeanFetchRequest:
        """The request `_get_actions_per_node` builds, its partitions in an order shuffled as
        aiokafka shuffles them: anew for each request where the order can matter (the
        partitions' fetch sizes add up to more than the fetch's), else once per assignment,
        node and wait, so that the same frame serves while only the offsets move."""
        fetcher = self.fetcher
        order_key = (assignment, node, fetcher._fetch_max_wait_ms)
        if (order_key != self._order_key
                or len(positions) * fetcher._max_partition_fetch_bytes > fetcher._fetch_max_bytes):
            self._order = list(positions)
            random.shuffle(self._order)
            self._order_key = order_key
        by_topics: dict[str, list[tuple[int, int, int]]] = collections.defaultdict(list)
        for tp in self._order:
            by_topics[tp.topic].append((tp.partition, positions[tp], fetcher._max_partition_fetch_bytes))
        return LeanFetchRequest(fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes, fetcher._fetch_max_bytes,
                                fetcher._isolation_level, list(by_topics.items()),
                                rack_id=fetcher._client_rack or "")

    def frame(self, conn: Any, request: LeanFetchRequest) -> tuple[Any, bytearray]:
        """(request struct, frame) of `request` for `conn`, from the template of its layout."""
        template = self._template
        if template is None or template.conn is not conn or template.layout != request.layout:
            template = self._template = _Template(conn, request)
            self.answer_type = template.request_struct.RESPONSE_TYPE
        frame = template.frame_for(request)
        return template.request_struct, frame

    # ---- one round trip ---------------------------------------------------------------------

    @workaround(
        relies_on={f"{_CONN}.send": "360d12e20e646dfb",
                   f"{_CONN}._handle_frame": "aadf78abd43cbeb1",
                   f"{_CONN}._read": "4020301d6ad40467",
                   f"{_CONN}.close": "7772fd3aee39df02",
                   f"{_FETCHER}._proc_fetch_request": "ace04969424fc674",
                   "aiokafka.client:AIOKafkaClient.send": "fb1726e3ed8e63ef"},
        issue=NO_ISSUE,
        recheck="the connection still sends a request as size + header + body, the header's "
                "correlation id at bytes 8-11 (from `_next_correlation_id`), queues "
                "(correlation id, request struct, future) in `_requests` for its reader, whose "
                "`_handle_frame` parses the header with the struct's `parse_response_header` "
                "and decodes the rest with `RESPONSE_TYPE.decode` only if the future is not "
                "done, then calls only its set_result (close(): set_exception), and pops the "
                "request after that (a request queued while decoding stays queued); the client "
                "still closes the connection (CONNECTION_TIMEOUT) and raises "
                "RequestTimedOutError when a request times out; _proc_fetch_request still does "
                "nothing with an empty answer without errors, at the positions asked for, but "
                "set each partition's highwater, lso and timestamp (`_ask_again`).")
    async def send(self, conn: Any, node_id: int, request: LeanFetchRequest) -> Any:
        """`AIOKafkaClient.send` of a Fetch request to a connected node: the frame encoded once,
        the answer read by the connection's reader (`_AnswerReader`), which asks the same again
        while the answers are empty and nothing changes (`answered`); the request timeout runs
        from the last time it asked."""
        request_struct, frame = self.frame(conn, request)
        answer: asyncio.Future[Any] = self.loop.create_future()
        round_ = _Round(conn, node_id, self._assignment, request, frame, _AnswerReader(self, request_struct), answer)
        try:
            self._ask(round_)
        except OSError as err:
            conn.close(reason=CloseReason.CONNECTION_BROKEN)
            raise Errors.KafkaConnectionError(f"Connection at {conn._host}:{conn._port} broken: {err}") from err
        self._round = round_
        self._in_flight = answer
        round_.expiry = self.loop.call_later(conn._request_timeout, self._expire, round_)
        try:
            return await answer
        except TimeoutError as exc:
            conn.close(reason=CloseReason.CONNECTION_TIMEOUT)
            raise Errors.RequestTimedOutError() from exc
        finally:
            self._round = None
            self._in_flight = None
            if round_.expiry is not None:
                round_.expiry.cancel()

    def _ask(self, round_: _Round) -> None:
        """Write `round_`'s request with the connection's next correlation id and queue its answer
        for the connection's reader, as `AIOKafkaConnection.send` does."""
        conn = round_.conn
        correlation_id = conn._next_correlation_id()
        frame = round_.frame
        struct.pack_into(">i", frame, _CORRELATION_AT, correlation_id)
        conn._writer.write(bytes(frame))
        conn._requests.append((correlation_id, round_.reader, round_.pending))
        round_.sent_at = self.loop.time()

    def _expire(self, round_: _Round) -> None:
        """The request timeout of `round_`, counted from its last request."""
        if round_.answer.done():
            return
        left = round_.sent_at + round_.conn._request_timeout - self.loop.time()
        if left > 0:
            round_.expiry = self.loop.call_later(left, self._expire, round_)
        else:
            round_.answer.set_exception(TimeoutError())

    def answered(self, response_type: Any, body: bytes) -> Any:
        """The connection's reader's decoding of an answer to a lean fetch: `decode`, unless it is
        the last empty answer again and the routine would only send the same request again
        (`_ask_again`), which is then done here, the routine left asleep."""
        empty = self._empty
        round_ = self._round
        if (round_ is not None and empty is not None and empty.answer_type is response_type
                and empty.body == body and self._ask_again(round_, empty)):
            self.reused += 1
            return _ASKED_AGAIN
        return self.decode(response_type, body)

    def _ask_again(self, round_: _Round, empty: _EmptyAnswer) -> bool:
        """For an answer to `round_` like the last empty one: if the routine, woken with it, would
        find the same steady request to send (nothing fetched, no position, pause, wait,
        assignment or leader changed: `steady_request`), do what `_proc_fetch_request` does with
        it (each partition's high watermark, last stable offset and time of its last fetch) and
        send that request again. No client rack: aiokafka would look for a preferred replica."""
        answer = round_.answer
        assignment = round_.assignment
        if answer.done() or assignment is None or not assignment.active or self.fetcher._client_rack:
            return False
        steady = self.steady_request(assignment, sending=round_.node)
        if steady.__class__ is not tuple or steady[1] is not round_.request:
            return False
        now_ms = int(1000 * time.time())
        state_value = assignment.state_value
        for tp, highwater, lso in empty.partitions:
            state = state_value(tp)
            state.highwater = highwater
            state.lso = lso
            state.timestamp = now_ms
        try:
            self._ask(round_)
        except OSError as err:  # the routine gets the error aiokafka's send raises; the connection is closed
            conn = round_.conn
            answer.set_exception(Errors.KafkaConnectionError(f"Connection at {conn._host}:{conn._port} broken: {err}"))
            self.loop.call_soon(_close_broken, conn)
            return True
        self.lean_round_trips += 1
        self.asked_again += 1
        return True

    def decode(self, response_type: Any, body: bytes) -> Any:
        """`response_type.decode(body)`, or the last empty answer's if `body` is its bytes."""
        empty = self._empty
        if empty is not None and empty.answer_type is response_type and empty.body == body:
            self.reused += 1
            return empty.answer
        answer = decode_fetch_answer(response_type, body)
        if answer is None:
            answer = response_type.decode(io.BytesIO(body))
        else:
            self.fast_decoded += 1
        self.decoded += 1
        if len(body) <= MEMO_MAX_BYTES and _is_empty(answer):
            self._empty = _EmptyAnswer(response_type, body, answer)
        return answer

    # ---- the routine ------------------------------------------------------------------------

    def _watch(self, assignment: Any) -> None:
        """Cancel the lean fetch in flight as soon as `assignment` ends, as aiokafka's loop
        cancels its fetch tasks (their answers are of no interest any more)."""
        if self._watched is not assignment:
            self._watched = assignment
            assignment.unassign_future.add_done_callback(self._on_unassigned)

    def _on_unassigned(self, _: Any) -> None:
        if self._in_flight is not None and not self._in_flight.done():
            self._in_flight.cancel()
        self.fetcher._notify(self.fetcher._wait_consume_future)

    @workaround(
        relies_on={f"{_FETCHER}._fetch_requests_routine": "12dc901a1e4a19f4",
                   f"{_FETCHER}._get_actions_per_node": "fd175a69d8d4f9b9",
                   f"{_FETCHER}._proc_fetch_request": "ace04969424fc674",
                   f"{_FETCHER}._select_read_replica": "da4e0ff8ec84dc27",
                   f"{_FETCHER}.close": "eb8e175ce6f83cba",
                   f"{_FETCHER}.fetched_records": "e20ce0c8117f12d2",
                   f"{_FETCHER}.seek_to": "10c45c3c873d9c50",
                   f"{_FETCHER}.request_offset_reset": "69da462b4aabf3f9",
                   "aiokafka.consumer.fetcher:FetchResult.calculate_backoff": "aeed7a095b626c0d"},
        issue=f"{NO_ISSUE} (a cost, not a bug)",
        recheck="diff aiokafka's new _fetch_requests_routine with the loop here, which takes its "
                "place as the fetcher's task (`install`; the part after the short path is a "
                "copy); `steady_request` must still be exactly the case in "
                "which _get_actions_per_node returns one fetch request and nothing else, and a "
                "float exactly the case in which it returns nothing but a positive backoff "
                "(records waiting on the only node); `_wait_consume_future` must still be what "
                "fetched_records, seek_to and request_offset_reset notify when records are "
                "consumed or dropped; "
                "_proc_fetch_request must still swallow a cancelled send and return whether it "
                "added records; close() must still cancel `_fetch_task` and then the pending tasks.")
    async def routine(self) -> None:
        """aiokafka's `_fetch_requests_routine`, with the steady state's round trip awaited
        directly (see the module's docstring)."""
        fetcher = self.fetcher
        task = asyncio.current_task()
        assert task is not None
        try:
            assignment = None

            def start_pending_task(coro: Any, node_id: int) -> None:
                pending = create_task(coro)
                fetcher._pending_tasks.add(pending)
                fetcher._in_flight.add(node_id)

                def on_done(fut: Any) -> None:
                    fetcher._in_flight.discard(node_id)

                pending.add_done_callback(on_done)

            while True:
                if assignment is None or not assignment.active:
                    for pending in fetcher._pending_tasks:
                        if not pending.done():
                            pending.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await pending
                    fetcher._pending_tasks.clear()
                    fetcher._records.clear()

                    subscription = fetcher._subscriptions.subscription
                    if subscription is None or subscription.assignment is None:
                        try:
                            waiter = fetcher._subscriptions.wait_for_assignment()
                            await waiter
                        except Errors.KafkaError:
                            continue
                    assignment = fetcher._subscriptions.subscription.assignment
                assert assignment is not None and assignment.active

                steady = self.steady_request(assignment)
                if isinstance(steady, float):
                    # Records wait to be consumed: aiokafka's loop would fetch nothing and wait for
                    # them to be consumed, the assignment to end or the backoff, whichever first
                    # (`fetched_records`, `seek_to` and resets notify `_wait_consume_future`).
                    self._watch(assignment)
                    self.consume_waits += 1
                    consumed = fetcher._wait_consume_future = self.loop.create_future()
                    backoff = self.loop.call_later(steady, fetcher._notify, consumed)
                    try:
                        await consumed
                    finally:
                        backoff.cancel()
                    continue
                if steady is not None:
                    node_id, request = steady
                    self._watch(assignment)
                    self._assignment = assignment
                    self.lean_round_trips += 1
                    fetcher._in_flight.add(node_id)
                    try:
                        has_new_data = await fetcher._proc_fetch_request(assignment, node_id, request)
                    finally:
                        fetcher._in_flight.discard(node_id)
                    if task.cancelling():  # close(): aiokafka's fetch swallowed the cancellation
                        raise asyncio.CancelledError
                    if has_new_data:
                        for waiter in fetcher._fetch_waiters:
                            fetcher._notify(waiter)
                    continue

                # aiokafka's loop, as it is.
                self.loop_turns += 1
                fetcher._wait_consume_future = create_future()
                (fetch_requests, reset_requests, timeout, invalid_metadata,
                 resume_futures) = fetcher._get_actions_per_node(assignment)
                for node_id, request in fetch_requests:
                    start_pending_task(fetcher._proc_fetch_request(assignment, node_id, request), node_id)
                for node_id, tps in reset_requests.items():
                    start_pending_task(fetcher._update_fetch_positions(assignment, node_id, tps), node_id)
                other_futs = [fetcher._wait_consume_future, assignment.unassign_future]
                if invalid_metadata:
                    other_futs.append(fetcher._client.force_metadata_update())
                done_set, _ = await asyncio.wait(
                    set(chain(fetcher._pending_tasks, other_futs, resume_futures)),
                    timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                done_pending = fetcher._pending_tasks.intersection(done_set)
                if done_pending:
                    if any(fut.result() for fut in done_pending):
                        for waiter in fetcher._fetch_waiters:
                            fetcher._notify(waiter)
                    fetcher._pending_tasks -= done_pending
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # pragma: no cover - as aiokafka
            raise Errors.KafkaError("Unexpected error during data retrieval") from exc


class _EmptyAnswer:
    """The last empty answer: its type, bytes and decoding, and per partition what aiokafka reads
    from it (`_proc_fetch_request`): (partition, high watermark, last stable offset)."""

    __slots__ = ("answer", "answer_type", "body", "partitions")

    def __init__(self, answer_type: type, body: bytes, answer: Any) -> None:
        self.answer_type, self.body, self.answer = answer_type, body, answer
        lso_at = 3 if answer.API_VERSION >= 4 else None
        self.partitions = [(TopicPartition(topic, partition[0]), partition[2],
                            partition[lso_at] if lso_at is not None else None)
                           for topic, partitions in answer.topics for partition in partitions]


def _close_broken(conn: Any) -> None:
    conn.close(reason=CloseReason.CONNECTION_BROKEN)


def _is_empty(answer: Any) -> bool:
    """Every partition of a Fetch answer without error and without records."""
    for _, partitions in answer.topics:
        for partition in partitions:
            if partition[1] != 0 or partition[-1]:
                return False
    return True


@workaround(
    relies_on={f"{_FETCHER}.__init__": "15b78b16e0ee3c19",
               "aiokafka.consumer.consumer:AIOKafkaConsumer.start": "5ba1baa38f6246a0"},
    issue=NO_ISSUE,
    recheck="the consumer still builds its fetcher in start() as `_fetcher`, which still starts "
            "its routine as `_fetch_task` and reaches the broker only through `_client`; the "
            "fetcher's state read by `steady_request` (`_records`, `_pending_tasks`, `_in_flight`, "
            "`_preferred_read_replica`, the fetch settings) still means what it meant.")
def install(consumer: AIOKafkaConsumer) -> LeanFetch:
    """Run the started `consumer`'s fetching with `LeanFetch.routine` from now on.

    aiokafka's routine is cancelled (its fetches in flight are cancelled by the new routine's
    first turn, which finds no assignment yet, as aiokafka's own first turn does); the fetcher's
    client is wrapped so that its lean fetch requests take the short way.
    """
    fetcher: Any = consumer._fetcher
    assert fetcher is not None, "install() needs a started consumer"
    lean = LeanFetch(fetcher)
    fetcher._client = _FetcherClient(fetcher._client, lean)
    previous = fetcher._fetch_task
    previous.cancel()
    fetcher._fetch_task = create_task(_after(previous, lean.routine))
    fetcher.lean_fetch = lean
    return lean


async def _after(previous: asyncio.Task[Any], routine: Callable[[], Any]) -> None:
    """`routine()` once `previous` (cancelled) has ended."""
    await asyncio.wait([previous])
    await routine()


def requests_sent(consumer: AIOKafkaConsumer) -> int:
    """Requests `consumer` has sent so far on its connections other than the group
    coordinator's (fetches, offset lookups, metadata): a benchmark's count of round trips."""
    conns: Any = consumer._client._conns
    return sum(conn._correlation_id for (_, group), conn in conns.items() if group == ConnectionGroup.DEFAULT)
