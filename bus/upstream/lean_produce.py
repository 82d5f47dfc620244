"""What producing costs a worker per event, cut in three places: its outputs appended straight to
aiokafka's produce batches, watched a batch at a time (`send_outputs`); its produce requests
written and their answers read with `struct` (`LeanAIOKafkaProducer`, the worker producer's type);
and those requests sent by a sender loop of the bus's own (`LeanSender`), which writes each one to
the broker's connection and settles its batches where the connection reads the answer, without
aiokafka's task, timeout context and waits per request.

Each message an agent sends through faust goes down three layers of coroutines (the bus's
`Producer.send`, faust's, aiokafka's `send` and its accumulator's `add_message`), and gets a
future of its own, resolved with a `RecordMetadata` when its batch is acknowledged, which the
delivery guard then holds and checks. A routed event is 5-12 such messages to 4-9 partitions, so
most of that is paid ten times per event for what one future per partition batch says as well:
a batch is acknowledged or fails as a whole (aiokafka resolves every message's future from its
batch's outcome).

`send_outputs` appends the messages, in order, to the open batch of their partition in aiokafka's
accumulator, where `AIOKafkaProducer.send` would have put them, and has the delivery guard watch
each batch's own future once. Whatever it cannot settle at once goes the usual way, through the
worker's producer (`app.producer.send`), in order: a topic without metadata yet, a full batch
(which must wait for the sender to drain it), a producer not started, closed or failed, one
that is not the bus's (which keeps the state of the appends, `AppendState`), a transactional or
idempotent one, and any message aiokafka would refuse (too large), so that every failure is
raised, and trips the guard, exactly as before.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import struct
import time
from collections.abc import Coroutine, Sequence
from io import BytesIO
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.client import ConnectionGroup
from aiokafka.conn import CloseReason
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    RequestTimedOutError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.producer.sender import Sender, SendProduceReqHandler
from aiokafka.protocol.api import ResponseHeader_v0
from aiokafka.protocol.produce import ProduceRequest, ProduceRequest_v5, ProduceRequest_v6, ProduceRequest_v7
from aiokafka.structs import TopicPartition

from bus.upstream.registry import NO_ISSUE, workaround

log = logging.getLogger(__name__)

_PRODUCER = "aiokafka.producer.producer:AIOKafkaProducer"
_ACCUMULATOR = "aiokafka.producer.message_accumulator"

#: (topic, key, value): what an agent's output is (`services.router.handling.Outgoing`).
Output = tuple[str, bytes | None, bytes | None]


async def send_outputs(app: Any, messages: Sequence[Output]) -> None:
    """Send `messages` in order with the worker's producer, every delivery watched by the app's
    delivery guard, without waiting for the broker (as `app.producer.send` for each)."""
    done, n = 0, len(messages)
    while done < n:
        done += append_outputs(app, messages, done)
        if done < n:
            topic, key, value = messages[done]
            await app.producer.send(topic, key, value, None, None, None)
            done += 1


class AppendState:
    """What `append_outputs` keeps between calls for one worker producer (the bus's `Producer`
    owns one, as `appends`)."""

    __slots__ = ("placed", "watched")

    def __init__(self) -> None:
        #: The batch future the delivery guard was given last, per partition: each batch is
        #: watched once, however many calls append to it.
        self.watched: dict[TopicPartition, Any] = {}
        #: Per topic: its partitions' metadata as last seen, and the partitioner's two lists for
        #: them (all partitions, those with a leader), made once per metadata update.
        self.placed: dict[str, tuple[Any, list[int], list[int]]] = {}


@workaround(
    relies_on={f"{_PRODUCER}.send": "ec0d5784d9f39383",
               f"{_PRODUCER}._serialize": "32a47968b52ac289",
               f"{_PRODUCER}._partition": "94cd5b19c6f27cfb",
               "aiokafka.cluster:ClusterMetadata.partitions_for_topic": "f25109bebe5179dd",
               "aiokafka.cluster:ClusterMetadata.available_partitions_for_topic": "d073f215e6745878",
               "aiokafka.cluster:ClusterMetadata.update_metadata": "ff38b965aeeb6301",
               f"{_ACCUMULATOR}:MessageAccumulator.add_message": "2f8ee718e1d7bb00",
               f"{_ACCUMULATOR}:MessageAccumulator._append_batch": "edfa9c58877ae4d7",
               f"{_ACCUMULATOR}:MessageAccumulator.drain_by_nodes": "cc2f3eafe1e19ba6",
               f"{_ACCUMULATOR}:MessageBatch.done": "3593c71c89aa6da9",
               f"{_ACCUMULATOR}:MessageBatch.failure": "1a80d3cc49a2052e",
               f"{_ACCUMULATOR}:BatchBuilder.append": "65992902ef83c7cb",
               "faust.transport.drivers.aiokafka:Producer.send": "72f84e7a1b56328e"},
    issue=f"{NO_ISSUE} (a cost, not a bug: aiokafka has no call that appends several records with "
          "one future; its batch API (`send_batch`) waits for a partition's pending batch to drain)",
    recheck="AIOKafkaProducer.send still only waits for metadata, serialises (refusing a record over "
            "max_request_size), partitions with `_partition` (the partitioner given list(all "
            "partitions) and list(those with a leader) of the cluster's `_partitions`, which a "
            "metadata update replaces whole, never a topic's dict in place), and calls add_message; "
            "add_message "
            "still appends to the last batch of `_batches[tp]` or a new one from `_append_batch` "
            "(which wakes the sender), refuses when the accumulator is closed or failed, and waits "
            "only when the batch is full (append returns None); a MessageBatch still resolves or "
            "fails its own `future` whenever it resolves or fails its messages' futures (done, "
            "failure, done_noack) and is only ever delivered whole; faust's Producer.send still "
            "adds nothing for a message without headers, partition or timestamp but the "
            "on_produce_message signal (only faust's livecheck listens; the bus does not use it).")
def append_outputs(app: Any, messages: Sequence[Output], start: int = 0) -> int:
    """Append `messages[start:]` in order to the open produce batch of each one's partition, as
    `AIOKafkaProducer.send` would, each batch's future watched once by the delivery guard; stop
    at the first message that the usual path must take (see the module's docstring). Returns how
    many were appended. Never waits, never raises for a message it leaves to the usual path."""
    producer = app.producer
    aio = getattr(producer, "_producer", None)
    state: AppendState | None = getattr(producer, "appends", None)
    if aio is None or state is None:
        return 0
    accumulator = aio._message_accumulator
    if accumulator._closed or accumulator._exception is not None or accumulator._txn_manager is not None:
        return 0
    watched, placed = state.watched, state.placed
    track = app.delivery_guard.track
    topics = aio._metadata._partitions  # replaced whole by each metadata update
    partitioner = aio._partitioner
    batches = accumulator._batches
    for i in range(start, len(messages)):
        topic, key, value = messages[i]
        partitions = topics.get(topic)
        if not partitions:
            return i - start
        known = placed.get(topic)
        if known is None or known[0] is not partitions:
            # `AIOKafkaProducer._partition`'s lists, made once per topic and metadata update.
            known = placed[topic] = (partitions, list(set(partitions)),
                                     list({p for p, meta in partitions.items() if meta.leader != -1}))
        try:
            key_bytes, value_bytes = aio._serialize(key, value, [])
            tp = TopicPartition(topic, partitioner(key_bytes, known[1], known[2]))
        except Exception:  # the usual path raises it, and trips the guard
            return i - start
        pending = batches.get(tp)
        batch = pending[-1] if pending else accumulator._append_batch(accumulator.create_builder(), tp)
        if batch._builder.append(timestamp=None, key=key_bytes, value=value_bytes, headers=[]) is None:
            return i - start  # full: the usual path waits for the sender to drain it
        future = batch.future
        if watched.get(tp) is not future:
            watched[tp] = future
            track(future)
    return len(messages) - start


# --------------------------------------------------------------------------------------------
# Produce requests written and their answers read with `struct`, not aiokafka's schema walk.
#
# aiokafka encodes each request and decodes each answer by walking its protocol schema in
# Python, field by field: ~50 µs to write a produce request for one event's ~6 partitions and
# ~60 µs to read its answer (timeit), as much as the rest of the event's producing. Requests
# and answers of versions 5-7 (one layout, what aiokafka uses with Kafka >= 1.0 and the local
# broker) are written and read here in a few `struct` calls, to the same bytes and the same
# values; any other version goes aiokafka's way.

_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
_HEADER = struct.Struct(">hhi")
_ACKS_TIMEOUT = struct.Struct(">hi")
_PARTITION_RECORDS = struct.Struct(">ii")
_PARTITION_ANSWER = struct.Struct(">ihqqq")
_NULL_STRING = _I16.pack(-1)


def _string(value: str | None) -> bytes:
    if value is None:
        return _NULL_STRING
    encoded = value.encode()
    return _I16.pack(len(encoded)) + encoded


class _Written:
    """A request header as aiokafka's connection takes it: something to `encode()`."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def encode(self) -> bytes:
        return self.data


def _read_answer(cls: Any, data: BytesIO | bytes) -> Any:
    """A produce answer of versions 5-7, as aiokafka's `decode` reads it: (topic, [(partition,
    error_code, offset, timestamp, log_start_offset), ...]) per topic, then the throttle time."""
    buf = data.read() if isinstance(data, BytesIO) else data
    unpack_i32, unpack_i16, unpack_partition = _I32.unpack_from, _I16.unpack_from, _PARTITION_ANSWER.unpack_from
    partition_size = _PARTITION_ANSWER.size
    (n,) = unpack_i32(buf, 0)
    pos = 4
    topics: list[tuple[str | None, list[tuple[int, int, int, int, int]] | None]] | None = None
    if n >= 0:
        topics = []
        for _ in range(n):
            (size,) = unpack_i16(buf, pos)
            pos += 2
            topic = None
            if size >= 0:
                topic = buf[pos:pos + size].decode()
                pos += size
            (m,) = unpack_i32(buf, pos)
            pos += 4
            partitions = None
            if m >= 0:
                partitions = []
                for _ in range(m):
                    partitions.append(unpack_partition(buf, pos))
                    pos += partition_size
            topics.append((topic, partitions))
    (throttle,) = unpack_i32(buf, pos)
    return cls(topics, throttle)


def _lean_answer(base: type[Any]) -> type[Any]:
    return type(f"Lean{base.__name__}", (base,), {"decode": classmethod(_read_answer)})


def _write(self: Any) -> bytes:
    """The request's body, as aiokafka's schema writes it for versions 3-7."""
    parts = [_string(self.transactional_id), _ACKS_TIMEOUT.pack(self.required_acks, self.timeout)]
    topics = self.topics
    parts.append(_I32.pack(len(topics)))
    pack_records = _PARTITION_RECORDS.pack
    for topic, partitions in topics:
        parts.append(_string(topic))
        parts.append(_I32.pack(len(partitions)))
        for partition, records in partitions:
            if records is None:
                parts.append(pack_records(partition, -1))
            else:
                parts.append(pack_records(partition, len(records)))
                parts.append(records)
    return b"".join(parts)


def _write_header(self: Any, correlation_id: int, client_id: str) -> _Written:
    return _Written(_HEADER.pack(self.API_KEY, self.API_VERSION, correlation_id) + _string(client_id))


def _read_header(self: Any, read_buffer: BytesIO | bytes) -> ResponseHeader_v0:
    data = read_buffer.read(4) if isinstance(read_buffer, BytesIO) else read_buffer[:4]
    return ResponseHeader_v0(_I32.unpack(data)[0])


def _lean_request(base: type[Any]) -> type[Any]:
    return type(f"Lean{base.__name__}", (base,),
                {"RESPONSE_TYPE": _lean_answer(base.RESPONSE_TYPE), "encode": _write,
                 "build_request_header": _write_header, "parse_response_header": _read_header})


#: Request version -> the request written here (answers read here too).
LEAN_REQUESTS: dict[int, type[Any]] = {base.API_VERSION: _lean_request(base)
                                       for base in (ProduceRequest_v5, ProduceRequest_v6, ProduceRequest_v7)}


class LeanProduceRequest(ProduceRequest):  # type: ignore[misc]
    """aiokafka's produce request, written and read here for versions 5-7."""

    def build(self, request_struct_class: type[Any]) -> Any:
        lean = LEAN_REQUESTS.get(request_struct_class.API_VERSION)
        if lean is None or request_struct_class.FLEXIBLE_VERSION:
            return super().build(request_struct_class)
        return lean(self._transactional_id, self._required_acks, self._timeout, self._topics)


class LeanSendProduceReqHandler(SendProduceReqHandler):  # type: ignore[misc]
    @workaround(
        replaces={"aiokafka.producer.sender:SendProduceReqHandler.create_request": "9e5840ea3ef2fd47"},
        relies_on={"aiokafka.protocol.produce:ProduceRequest.build": "2726c82e2fe6b919",
                   "aiokafka.protocol.api:Request.prepare": "af9f578c3892ad94",
                   "aiokafka.protocol.api:RequestStruct.build_request_header": "314be25a4f8315ab",
                   "aiokafka.protocol.api:RequestStruct.parse_response_header": "7c0aca4fd7fe7f37",
                   "aiokafka.conn:AIOKafkaConnection.send": "360d12e20e646dfb",
                   "aiokafka.conn:AIOKafkaConnection._handle_frame": "aadf78abd43cbeb1",
                   "aiokafka.producer.sender:SendProduceReqHandler.handle_response": "552007acc49e7f06"},
        issue=f"{NO_ISSUE} (a cost: aiokafka's protocol is encoded and decoded field by field in Python)",
        recheck="the produce request and answer layouts of versions 5-7 are still the ones written "
                "and read here (tests/unit/test_lean_produce.py compares them with aiokafka's "
                "schemas); the connection still calls only prepare(), build_request_header(...)."
                "encode(), encode(), parse_response_header(BytesIO) and RESPONSE_TYPE.decode(BytesIO) "
                "of a request; create_request still builds the request from the batches alone.")
    def create_request(self) -> ProduceRequest:
        """aiokafka's produce request for the batches, written and read with `struct`."""
        topics: dict[str, list[tuple[int, Any]]] = collections.defaultdict(list)
        for tp, batch in self._batches.items():
            topics[tp.topic].append((tp.partition, batch.get_data_buffer()))
        txn_manager = self._sender._txn_manager
        return LeanProduceRequest(
            transactional_id=None if txn_manager is None else txn_manager.transactional_id,
            required_acks=self._sender._acks, timeout=self._sender._request_timeout_ms,
            topics=list(topics.items()))


class LeanSender(Sender):  # type: ignore[misc]
    """aiokafka's sender with a loop of the bus's own (`_sender_routine`): its produce requests
    written straight to the broker's connection and their answers settled where the connection
    reads them, without a task, a timeout context and a wait on a set of tasks per request.

    aiokafka's loop wakes twice per produce request (for the drained batches, then for the
    finished task), starts a task for each request (`_send_produce_req`), which awaits the
    client's `send`, which awaits the connection's answer inside an `async_timeout` (a timer
    and a cancellation scope per request): at 20-100 events/s, one request per event, that
    machinery cost as much as writing the request itself (py-spy, benchmarks/router_cpu.py).
    Here the loop wakes once per drain (a batch appended, a node freed with batches waiting),
    writes each node's request at once when its connection is up (`_write_produce_req`) and
    leaves a `ProduceAnswer` in the connection's queue of requests: the connection's reader
    settles the batches as it reads the answer (`SendProduceReqHandler.handle_response`, as
    aiokafka's handler does), or fails or re-enqueues them (retriable errors, as aiokafka does)
    when the connection breaks, closes, or the request times out (`request_timeout_ms`, checked
    by one timer for all requests in flight rather than one per request). A node without a
    connection yet, and a transactional, idempotent or acks=0 producer, go aiokafka's way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Produce requests written here and not answered yet (their deadlines in `ProduceAnswer`).
        self._answers: set[ProduceAnswer] = set()
        #: Produce requests sent aiokafka's way (no connection yet), and re-enqueues waiting out
        #: their backoff: the loop's tasks, awaited when it stops.
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        #: What broke the loop from outside it (an answer's handling raised): raised in the loop,
        #: which fails every batch (aiokafka's `_fail_all`), as a failed task of aiokafka's would.
        self._broken: BaseException | None = None

    @workaround(
        replaces={"aiokafka.producer.sender:Sender._sender_routine": "c07b5ec56875658f"},
        relies_on={f"{_ACCUMULATOR}:MessageAccumulator.drain_by_nodes": "cc2f3eafe1e19ba6",
                   f"{_ACCUMULATOR}:MessageAccumulator.waiter": "f1d3a571d4b640b9",
                   f"{_ACCUMULATOR}:MessageAccumulator._append_batch": "edfa9c58877ae4d7",
                   f"{_ACCUMULATOR}:MessageAccumulator.reenqueue": "5b1222b685b94604",
                   "aiokafka.producer.sender:Sender.start": "b9d733bce58bd7b0",
                   "aiokafka.producer.sender:Sender.close": "7e10a540fd0c307f",
                   "aiokafka.producer.producer:AIOKafkaProducer.stop": "8ee7f0d1b6a5f671"},
        issue=f"{NO_ISSUE} (a cost, not a bug)",
        recheck="aiokafka's loop still only drains the accumulator by node (skipping nodes in "
                "flight and muted partitions), sends one request per node with its partitions "
                "muted until it is settled, waits for new data (the accumulator's waiter, which "
                "`_append_batch`, a full batch and the linger timer resolve), a finished request "
                "or a metadata update when a leader is unknown, and for a transactional or "
                "idempotent producer also runs the transaction requests and waits for a pid; a "
                "failure of the loop still fails every batch (`start`'s `_fail_all`); the "
                "producer's stop still flushes the accumulator before it closes the sender.")
    async def _sender_routine(self) -> None:
        """aiokafka's loop (drain the batches by node, one produce request per node), the
        requests written and settled without a task each (see the class's docstring)."""
        if self._txn_manager is not None or self._acks == 0:
            await super()._sender_routine()
            return
        accumulator = self._message_accumulator
        in_flight, muted = self._in_flight, self._muted_partitions
        try:
            while True:
                if self._broken is not None:
                    raise self._broken
                batches, unknown_leaders_exist = accumulator.drain_by_nodes(
                    ignore_nodes=in_flight, muted_partitions=muted)
                for node_id, node_batches in batches.items():
                    in_flight.add(node_id)
                    muted.update(node_batches)
                    if not self._write_produce_req(node_id, node_batches):
                        self._start(self._send_produce_req(node_id, node_batches))
                if unknown_leaders_exist:
                    # As aiokafka: update the metadata, or wait for a request to finish.
                    await asyncio.wait({self.client.force_metadata_update(), accumulator.waiter()},
                                       return_when=asyncio.FIRST_COMPLETED)
                else:
                    await accumulator.waiter()
        except asyncio.CancelledError:
            # As aiokafka (the producer has flushed every batch before it closes the sender).
            for task in list(self._tasks):
                await task
        except (ProducerFenced, OutOfOrderSequenceNumber, TransactionalIdAuthorizationFailed):
            raise
        except Exception as exc:
            log.exception("Unexpected error in sender routine")
            raise KafkaError("Unexpected error during batch delivery") from exc
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    @workaround(
        replaces={"aiokafka.producer.sender:Sender._send_produce_req": "5fbb5b444b0f65bd"},
        issue=NO_ISSUE,
        recheck="_send_produce_req still only runs a SendProduceReqHandler for the batches and "
                "then unmutes the node and the partitions.")
    async def _send_produce_req(self, node_id: int, batches: dict[TopicPartition, Any]) -> None:
        """aiokafka's, with the produce request written and read with `struct`: the way of a
        request to a node not connected yet (aiokafka's client connects first)."""
        await LeanSendProduceReqHandler(self, batches).do(node_id)
        self._in_flight.remove(node_id)
        for tp in batches:
            self._muted_partitions.remove(tp)

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a task of the loop's; the loop wakes when it ends, and fails if it raised."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None and self._broken is None:
            self._broken = exc
        self._wake()

    def _wake(self) -> None:
        """Wake the loop (to drain what waited for a node in flight, or to raise `_broken`)."""
        waiter = self._message_accumulator.waiter()
        if not waiter.done():
            waiter.set_result(None)

    @workaround(
        relies_on={"aiokafka.conn:AIOKafkaConnection.send": "360d12e20e646dfb",
                   "aiokafka.conn:AIOKafkaConnection._handle_frame": "aadf78abd43cbeb1",
                   "aiokafka.conn:AIOKafkaConnection.close": "7772fd3aee39df02",
                   "aiokafka.conn:AIOKafkaConnection.connected": "515f0348b12cdab4",
                   "aiokafka.client:AIOKafkaClient.send": "fb1726e3ed8e63ef",
                   "aiokafka.client:AIOKafkaClient._get_conn": "1eaeaab224047a09",
                   "aiokafka.producer.sender:SendProduceReqHandler.do": "89912727d3c89bfb",
                   "aiokafka.producer.sender:SendProduceReqHandler.handle_response": "552007acc49e7f06",
                   "aiokafka.producer.sender:SendProduceReqHandler._can_retry": "0004177074b5b810",
                   "aiokafka.producer.sender:Sender._send_produce_req": "5fbb5b444b0f65bd"},
        issue=f"{NO_ISSUE} (a cost, not a bug)",
        recheck="the connection's send still only prepares the request for the broker's "
                "versions, writes the size, header and body, and queues (correlation id, request, "
                "future) in `_requests`; its reader still settles the head of that queue with "
                "done()/set_result(decoded answer) (set_exception on a correlation mismatch), and "
                "close() still fails every queued one not done with set_exception; the client's "
                "send still only gets a connected connection (`_conns[(node, DEFAULT)]`) and, on "
                "a timeout of its wait (`request_timeout_ms`), closes it and raises "
                "RequestTimedOutError; the handler's do() still handles a KafkaError, the answer "
                "(handle_response), and re-enqueues after its backoff and a metadata update "
                "exactly as `ProduceAnswer` does.")
    def _write_produce_req(self, node_id: int, batches: dict[TopicPartition, Any]) -> bool:
        """Write the produce request for `batches` to `node_id`'s connection, its answer to be
        settled by a `ProduceAnswer` queued where the connection reads answers; False (nothing
        written) if the node has no connection up: aiokafka's way connects first."""
        conn = self.client._conns.get((node_id, ConnectionGroup.DEFAULT))
        if conn is None or not conn.connected():
            return False
        handler = LeanSendProduceReqHandler(self, batches)
        request = handler.create_request().prepare(conn._versions)
        correlation_id = conn._next_correlation_id()
        message = request.build_request_header(correlation_id=correlation_id,
                                               client_id=conn._client_id).encode() + request.encode()
        timeout = self._request_timeout_ms / 1000
        answer = ProduceAnswer(self, node_id, handler, time.monotonic() + timeout, conn)
        try:
            conn._writer.write(_I32.pack(len(message)) + message)
        except OSError as err:
            conn.close(reason=CloseReason.CONNECTION_BROKEN)
            answer.set_exception(KafkaConnectionError(f"Connection at {conn.host}:{conn.port} broken: {err}"))
            return True
        conn._requests.append((correlation_id, request, answer))
        self._answers.add(answer)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(timeout, self._check_timeouts)
        return True

    def _check_timeouts(self) -> None:
        """Time out the requests in flight past their deadline (aiokafka's client closes the
        connection and raises RequestTimedOutError); check again at the next deadline."""
        self._timer = None
        now = time.monotonic()
        for answer in sorted(self._answers, key=lambda a: a.deadline):
            if answer.deadline <= now and not answer.done():
                answer.time_out()
        if self._answers:
            next_in = max(0.0, min(a.deadline for a in self._answers) - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(next_in, self._check_timeouts)

    def _settled(self, answer: ProduceAnswer) -> None:
        """A request's batches are done, failed, or to be re-enqueued after aiokafka's backoff;
        then its node and partitions are free again (as `_send_produce_req` does after `do`)."""
        self._answers.discard(answer)
        handler = answer.handler
        if handler._to_reenqueue:
            self._start(self._reenqueue(answer.node_id, handler))
        else:
            self._release(answer.node_id, handler._batches)

    async def _reenqueue(self, node_id: int, handler: Any) -> None:
        """The end of aiokafka's `SendProduceReqHandler.do` for batches it retries."""
        try:
            await asyncio.sleep(handler._default_backoff)
            for batch in handler._to_reenqueue:
                self._message_accumulator.reenqueue(batch)
            await self.client._maybe_wait_metadata()
        finally:
            self._release(node_id, handler._batches)

    def _release(self, node_id: int, batches: dict[TopicPartition, Any]) -> None:
        self._in_flight.discard(node_id)
        self._muted_partitions.difference_update(batches)
        if self._message_accumulator._batches:
            self._wake()  # batches waited for this node


class ProduceAnswer:
    """Where a produce request written by `LeanSender` is settled: queued in the connection's
    `_requests` in place of aiokafka's future, it takes the answer (`set_result`, called by the
    connection's reader with the decoded answer) or the connection's failure (`set_exception`,
    by `close()` and on a correlation mismatch), and does what aiokafka's
    `SendProduceReqHandler.do` does with them; `time_out` is aiokafka's client's timeout."""

    __slots__ = ("_done", "conn", "deadline", "handler", "node_id", "sender")

    def __init__(self, sender: LeanSender, node_id: int, handler: Any, deadline: float, conn: Any) -> None:
        self.sender, self.node_id, self.handler, self.deadline, self.conn = sender, node_id, handler, deadline, conn
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, response: Any) -> None:
        """The broker's answer: each batch done, failed or to be retried (aiokafka's handler)."""
        if self._done:
            return
        self._done = True
        try:
            self.handler.handle_response(response)
        except Exception as exc:  # a bug: fail the sender (every batch) rather than the reader
            self._break(exc)
            return
        self.sender._settled(self)

    def set_exception(self, exc: BaseException) -> None:
        """No answer: retry the batches that can be (aiokafka's retriable errors within the
        batch's time to live), fail the others."""
        if self._done:
            return
        self._done = True
        try:
            if not isinstance(exc, KafkaError):
                raise exc
            log.warning("Got error produce response: %s", exc)
            if getattr(exc, "invalid_metadata", False):
                self.sender.client.force_metadata_update()
            handler = self.handler
            for batch in handler._batches.values():
                if not handler._can_retry(exc, batch):
                    batch.failure(exception=exc)
                else:
                    handler._to_reenqueue.append(batch)
        except Exception as err:
            self._break(err)
            return
        self.sender._settled(self)

    def time_out(self) -> None:
        """As aiokafka's client when a request waits past `request_timeout_ms`: close the
        connection (failing every request queued on it) and raise RequestTimedOutError."""
        self.set_exception(RequestTimedOutError())
        self.conn.close(reason=CloseReason.CONNECTION_TIMEOUT)

    def _break(self, exc: BaseException) -> None:
        sender = self.sender
        sender._answers.discard(self)
        if sender._broken is None:
            sender._broken = exc
        sender._wake()


class LeanAIOKafkaProducer(AIOKafkaProducer):  # type: ignore[misc]
    """aiokafka's producer whose produce requests are sent by the bus's sender loop, written and
    read with `struct`."""

    @workaround(
        relies_on={f"{_PRODUCER}.__init__": "f924bfdbf96d6b6c",
                   "aiokafka.producer.sender:Sender.__init__": "4bb233e8e8adef2a"},
        issue=NO_ISSUE,
        recheck="AIOKafkaProducer.__init__ still builds its Sender last, from these arguments, and "
                "nothing else holds that sender before start().")
    def __init__(self, **options: Any) -> None:
        """aiokafka's producer, with its sender (built last by aiokafka, from the same arguments)
        the bus's (`LeanSender`: its own loop, produce requests written and read with `struct`)."""
        super().__init__(**options)
        sender: Any = self.__dict__["_sender"]  # (the base class is untyped)
        self._sender = LeanSender(
            self.client, acks=sender._acks, txn_manager=sender._txn_manager,
            retry_backoff_ms=sender._retry_backoff * 1000, message_accumulator=sender._message_accumulator,
            request_timeout_ms=sender._request_timeout_ms)
