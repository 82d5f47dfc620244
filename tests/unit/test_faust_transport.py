"""The `tuned://` faust transport: the worker consumer uses the bus's fetch wait, not faust's 1500 ms,
and hands fetched records to the streams a batch at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.consumer.fetcher import FetchResult
from aiokafka.errors import KafkaError
from faust.types import TP, Message

from bus.faust_app import BusApp, make_app
from bus.kafka.batches import BATCH_MAX, BATCHES_WAITING, fetched_batches
from bus.kafka.faust_transport import Consumer, Transport
from bus.settings import KafkaSettings
from bus.upstream.faust_streams import channel_values
from bus.upstream.faust_worker import ConsumerThread, LoopConsumerThread


def worker_consumer(app: BusApp) -> Consumer:
    """The worker consumer of the bus's tuned transport, which these tests drive."""
    consumer = app.consumer
    assert isinstance(consumer, Consumer)
    return consumer


async def test_the_worker_consumer_waits_only_as_long_as_configured(tmp_path: Path) -> None:
    kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", fetch_max_wait_ms=7)
    app = make_app("transport-test", kafka, tmp_path)
    assert isinstance(app.transport, Transport)
    consumer = worker_consumer(app)
    thread = consumer._thread  # faust builds the aiokafka consumer inside this thread service
    assert isinstance(thread, ConsumerThread)
    aiokafka_consumer = thread._create_worker_consumer(app.transport)
    try:
        assert aiokafka_consumer._fetch_max_wait_ms == 7
    finally:
        await aiokafka_consumer.stop()


def _fetched(tp: TP, offsets: Iterable[int]) -> list[tuple[TP, Any]]:
    return [(tp, SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=o)) for o in offsets]


async def test_a_fetched_batch_reaches_the_streams_in_order_and_is_marked_read(tmp_path: Path) -> None:
    consumer = worker_consumer(
        make_app("transport-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path))
    a, b = TP("events", 0), TP("events", 1)
    delivered: list[tuple[int, int]] = []

    async def to_streams(message: Any) -> None:
        delivered.append((message.partition, message.offset))

    consumer.callback = to_streams
    consumer._read_offset[b] = 8  # partition 1 was read up to offset 8 before
    await consumer._deliver(_fetched(a, range(250)) + _fetched(b, [6, 7, 8, 9]))
    assert delivered == [(0, o) for o in range(250)] + [(1, 8), (1, 9)]
    assert (consumer._read_offset[a], consumer._read_offset[b]) == (249, 9)


async def test_a_rebalance_during_a_batch_leaves_the_rest_of_it_undelivered_and_unread(tmp_path: Path) -> None:
    consumer = worker_consumer(
        make_app("transport-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path))
    tp = TP("events", 0)
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    delivered: list[int] = []

    async def one_batch(timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        for record in _fetched(tp, range(10)):
            yield record
        fetcher._stopped.set()

    async def to_streams(message: Any) -> None:
        delivered.append(message.offset)
        if message.offset == 3:
            consumer.stop_flow()  # a rebalance begins while this record waits for room in a stream
            await asyncio.Event().wait()

    consumer.callback = to_streams
    consumer.getmany = one_batch  # type: ignore[method-assign]
    await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)
    assert delivered == [0, 1, 2, 3]
    # Records 3-9 are not marked read: after the rebalance they are fetched again from the commit.
    assert consumer._read_offset[tp] == 2


def test_faust_monitor_is_not_run_per_event_and_rebalances_log_no_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app("transport-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    list(app.on_init_dependencies())
    assert app.monitor not in set(app.sensors)
    # What faust's check for a stuck stream reads is still recorded.
    app.sensors.on_stream_event_in(TP("events", 0), 7, None, None)  # type: ignore[arg-type]
    assert TP("events", 0) in app.monitor.stream_inbound_time
    app.on_rebalance_start()
    app.on_rebalance_return()
    app.on_rebalance_end()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_records_of_a_topic_read_in_batches_reach_its_agent_as_lists_in_order(tmp_path: Path) -> None:
    app = make_app("transport-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    consumer = worker_consumer(app)
    agent_queue: asyncio.Queue[list[Any]] = asyncio.Queue()
    app.batch_readers["events"] = SimpleNamespace(queue=agent_queue)
    to_conductor: list[tuple[str, int]] = []

    async def to_streams(message: Any) -> None:
        to_conductor.append((message.topic, message.offset))

    consumer.callback = to_streams
    a, b, other = TP("events", 0), TP("events", 1), TP("cases.changes", 0)
    delivery = asyncio.ensure_future(consumer._deliver(
        _fetched(a, range(1100)) + _fetched(other, [5]) + _fetched(b, range(300))))
    batches: list[list[Any]] = []
    while len(batches) < 3:
        batches.append(await asyncio.wait_for(agent_queue.get(), 5))
    await asyncio.wait_for(delivery, 5)
    assert [len(batch) for batch in batches] == [BATCH_MAX, BATCH_MAX, 400]
    assert [(m.partition, m.offset) for batch in batches for m in batch] == (
        [(0, o) for o in range(1100)] + [(1, o) for o in range(300)])
    assert to_conductor == [("cases.changes", 5)]
    assert (consumer._read_offset[a], consumer._read_offset[b]) == (1099, 299)


async def test_the_hand_over_waits_while_the_agent_has_batches_waiting(tmp_path: Path) -> None:
    app = make_app("transport-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    agent_queue: asyncio.Queue[list[Any]] = asyncio.Queue()
    for _ in range(BATCHES_WAITING):
        agent_queue.put_nowait([])
    app.batch_readers["events"] = SimpleNamespace(queue=agent_queue)
    delivery = asyncio.ensure_future(worker_consumer(app)._deliver(_fetched(TP("events", 0), range(3))))
    await asyncio.sleep(0.05)
    assert not delivery.done() and agent_queue.qsize() == BATCHES_WAITING
    agent_queue.get_nowait()  # the agent takes a batch
    await asyncio.wait_for(delivery, 5)
    assert [m.offset for m in agent_queue._queue[-1]] == [0, 1, 2]  # type: ignore[attr-defined]


def _one_fetch(consumer: Consumer, records: list[tuple[TP, Any]]) -> Any:
    """A fetcher whose single fetch brings `records` (then it stops), for `_drain_messages`."""
    fetcher = SimpleNamespace(_stopped=asyncio.Event())

    async def one_batch(timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        for record in records:
            yield record
        fetcher._stopped.set()

    consumer.getmany = one_batch  # type: ignore[method-assign]
    return fetcher


def _agent_reading(app: BusApp, waiting: int = 0) -> asyncio.Queue[list[Any]]:
    """The queue of a started agent reading `events` in batches, `waiting` batches on it."""
    agent_queue: asyncio.Queue[list[Any]] = asyncio.Queue()
    for _ in range(waiting):
        agent_queue.put_nowait([])
    app.batch_readers["events"] = SimpleNamespace(queue=agent_queue)
    app.flow_control.resume()  # as after the worker's first assignment
    return agent_queue


async def test_live_records_go_to_their_agent_at_once_and_a_hand_over_that_waits_stays_interruptible(
        tmp_path: Path) -> None:
    # A few records whose agent has room are handed over in the fetch loop's own task (faust
    # races each delivery against a suspension, starting and cancelling five tasks per fetch);
    # a hand-over that has to wait for the agent is still raced, so a rebalance can cut it short.
    app = make_app("transport-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    consumer = worker_consumer(app)
    raced: list[int] = []
    wait_first = consumer.wait_first

    async def counting_wait_first(*coros: Any, **kwargs: Any) -> Any:
        raced.append(len(coros))
        return await wait_first(*coros, **kwargs)

    consumer.wait_first = counting_wait_first  # type: ignore[method-assign]
    agent_queue = _agent_reading(app)
    tp = TP("events", 0)
    await asyncio.wait_for(consumer._drain_messages(_one_fetch(consumer, _fetched(tp, range(3)))), 5)
    assert [m.offset for m in agent_queue.get_nowait()] == [0, 1, 2]
    assert raced == []

    full = _agent_reading(app, waiting=BATCHES_WAITING)
    drain = asyncio.ensure_future(consumer._drain_messages(_one_fetch(consumer, _fetched(tp, range(3, 6)))))
    await asyncio.sleep(0.05)
    assert raced and not drain.done()  # waiting for the agent, raced against a suspension
    consumer.stop_flow()  # a rebalance begins
    await asyncio.wait_for(drain, 5)
    assert full.qsize() == BATCHES_WAITING and all(batch == [] for batch in full._queue)  # type: ignore[attr-defined]


async def test_a_rebalance_while_a_gap_in_the_offsets_is_recorded_stops_the_hand_over(tmp_path: Path) -> None:
    # Recording a gap lets other tasks run; a rebalance that begins then leaves the batch with
    # its agent's queue untouched (the new assignment fetches it again from the commit).
    app = make_app("transport-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    consumer = worker_consumer(app)
    agent_queue = _agent_reading(app)
    tp = TP("events", 0)
    app.topics.acking_topics.add("events")  # as for an agent's topic
    consumer._read_offset[tp] = 4
    add_gap = consumer._add_gap

    async def gap_during_a_rebalance(tp: TP, offset_from: int, offset_to: int) -> None:
        consumer.stop_flow()
        await add_gap(tp, offset_from, offset_to)

    consumer._add_gap = gap_during_a_rebalance  # type: ignore[method-assign]
    await asyncio.wait_for(consumer._drain_messages(_one_fetch(consumer, _fetched(tp, [5, 9, 10]))), 5)
    assert agent_queue.empty()


def _message(offset: int, generation: int) -> Message:
    return Message("events", 0, offset, 0.0, 0, None, None, b"{}", None, generation_id=generation)


async def test_an_agent_gets_batches_acked_when_it_asks_for_the_next_and_none_from_before_a_rebalance(
        tmp_path: Path) -> None:
    app = make_app("transport-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    app.batch_readers["events"] = None
    first = [_message(0, 1), _message(1, 1)]
    stale = [_message(2, 1)]  # fetched in generation 1, reaching the agent after a rebalance
    fresh = [_message(2, 2)]

    queue: asyncio.Queue[list[Message]] = asyncio.Queue()
    stream: Any = SimpleNamespace(channel=SimpleNamespace(topics=("events",), queue=queue))  # a stand-in

    app.consumer_generation_id = 1
    queue.put_nowait(first)
    taken = fetched_batches(app, stream)
    assert await anext(taken) == first
    assert not any(m.acked for m in first)  # being handled
    app.consumer_generation_id = 2
    queue.put_nowait(stale + fresh)
    assert await anext(taken) == fresh
    assert all(m.acked for m in first) and not stale[0].acked and not fresh[0].acked
    await taken.aclose()  # the worker stops mid-batch
    assert not fresh[0].acked


async def test_the_router_runs_faust_s_consumer_in_the_worker_s_own_loop_and_fetches_lean(tmp_path: Path) -> None:
    """No consumer thread for the router: calls to its consumer are plain awaits in the worker's
    loop, coroutine functions and plain ones alike; other workers keep faust's thread."""
    from prometheus_client import CollectorRegistry

    from bus.settings import StateSettings
    from services.router.app import build
    from services.router.settings import RouterSettings

    kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    app: Any = build(kafka, StateSettings(state_dir=tmp_path), RouterSettings(), CollectorRegistry())
    thread = worker_consumer(app)._thread
    assert isinstance(thread, LoopConsumerThread)
    loop = asyncio.get_running_loop()
    assert thread.thread_loop is loop

    async def where() -> tuple[int, asyncio.AbstractEventLoop]:
        return threading.get_ident(), asyncio.get_running_loop()

    assert await thread.call_thread(where) == (threading.get_ident(), loop)
    assert await thread.call_thread(lambda n: n + 1, 1) == 2
    assert app.conf.producer_linger == 0  # a batch's outputs leave together without it
    assert app.lean_fetch  # its steady-state fetches take bus/upstream/lean_fetch.py's short path

    other_app = make_app("transport-test", kafka, tmp_path)
    other = worker_consumer(other_app)._thread
    assert isinstance(other, ConsumerThread) and not isinstance(other, LoopConsumerThread)
    assert other.thread_loop is not loop
    assert not other_app.lean_fetch


# ---- one fetch cycle that brings records: turns of the event loop and wake-ups ---------------


def _counting_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every `asyncio.sleep` from now on (each lets the loop go round once more), recorded."""
    sleeps: list[float] = []
    sleep = asyncio.sleep

    async def counting(delay: float, *args: Any, **kwargs: Any) -> Any:
        sleeps.append(delay)
        return await sleep(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", counting)
    return sleeps


async def test_an_agent_asking_for_its_next_batch_waits_on_its_queue_without_an_extra_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # faust's stream iterator sleeps a turn before each value: the agent woke twice per batch.
    app = make_app("transport-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    app.flow_control.resume()
    channel: Any = app.channel()
    values = channel_values(SimpleNamespace(channel=channel))  # type: ignore[arg-type]  # a stand-in stream
    sleep = asyncio.sleep
    sleeps = _counting_sleeps(monkeypatch)
    channel.queue.put_nowait(["waiting"])
    assert await anext(values) == ["waiting"]
    assert sleeps == [0]  # a batch already there: one turn for the others first, as faust
    sleeps.clear()
    asking = asyncio.ensure_future(anext(values))
    await sleep(0)
    assert not asking.done()
    channel.queue.put_nowait(["next"])
    await sleep(0)  # the turn in which the agent wakes
    assert asking.done() and asking.result() == ["next"]
    assert sleeps == []


async def test_an_agent_s_channel_values_end_when_faust_stops_the_actor_and_raise_what_is_thrown(
        tmp_path: Path) -> None:
    app = make_app("transport-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    app.flow_control.resume()
    channel: Any = app.channel()
    values = channel_values(SimpleNamespace(channel=channel))  # type: ignore[arg-type]
    channel._throw(RuntimeError("thrown"))
    with pytest.raises(RuntimeError, match="thrown"):
        await anext(values)
    values = channel_values(SimpleNamespace(channel=channel))  # type: ignore[arg-type]
    asking = asyncio.ensure_future(anext(values))
    await asyncio.sleep(0)
    channel._throw(StopAsyncIteration())  # faust's Actor.cancel, when the agent stops
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(asking, 5)


class _Records:
    """A partition's fetched records as aiokafka's FetchResult reads them."""

    def __init__(self, records: list[str], next_fetch_offset: int) -> None:
        self._records = iter(records)
        self.next_fetch_offset = next_fetch_offset

    def __iter__(self) -> _Records:
        return self

    def __next__(self) -> str:
        return next(self._records)


def _lean_fetching(tmp_path: Path) -> tuple[LoopConsumerThread, Any, Callable[[TP, list[str]], None]]:
    """The router's consumer thread over a stand-in aiokafka fetcher, and a function that stores
    fetched records in it as aiokafka's fetch routine does, waking the fetches waiting for them."""
    from prometheus_client import CollectorRegistry

    from bus.settings import StateSettings
    from services.router.app import build
    from services.router.settings import RouterSettings

    app: Any = build(KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), StateSettings(state_dir=tmp_path),
                     RouterSettings(), CollectorRegistry())
    thread = worker_consumer(app)._thread
    assert isinstance(thread, LoopConsumerThread)

    def notify(future: asyncio.Future[Any] | None) -> None:
        if future is not None and not future.done():
            future.set_result(None)

    state = SimpleNamespace(paused=False, position=5, consumed_to=lambda offset: None)
    assignment = SimpleNamespace(active=True, state_value=lambda tp: state)
    fetcher = SimpleNamespace(
        _records={}, _fetch_waiters=set(), _closed=False, _notify=notify,
        _wait_consume_future=asyncio.get_running_loop().create_future(),
        _subscriptions=SimpleNamespace(reassignment_in_progress=False, fetch_context=contextlib.nullcontext,
                                       is_assigned=lambda tp: True))
    thread._consumer = SimpleNamespace(_fetcher=fetcher, _closed=False, _max_poll_records=None)

    def fetched(tp: TP, records: list[str]) -> None:
        fetcher._records[tp] = FetchResult(tp, assignment=assignment, partition_records=_Records(records, 5),
                                           backoff=0)
        for waiter in fetcher._fetch_waiters:
            notify(waiter)

    return thread, fetcher, fetched


async def test_a_fetch_waiting_for_records_wakes_in_the_turn_after_they_come(tmp_path: Path) -> None:
    # aiokafka's fetched_records waits in asyncio.wait, whose callback wakes the fetch a turn later.
    thread, fetcher, fetched = _lean_fetching(tmp_path)
    tp = TP("events", 0)
    fetch = asyncio.ensure_future(thread.getmany({tp}, timeout=5))
    await asyncio.sleep(0)
    assert not fetch.done() and len(fetcher._fetch_waiters) == 1 and thread.fetch_waits == 1
    fetched(tp, ["r1", "r2"])
    await asyncio.sleep(0)
    assert fetch.done() and fetch.result() == {tp: ["r1", "r2"]}
    assert not fetcher._fetch_waiters and fetcher._wait_consume_future.done()  # the routine may fetch again

    fetched(tp, ["r3"])  # records there already: no wait
    assert await thread.getmany({tp}, timeout=5) == {tp: ["r3"]} and thread.fetch_waits == 1
    assert await thread.getmany({tp}, timeout=0.01) == {} and thread.fetch_waits == 2  # nothing came
    assert not fetcher._fetch_waiters

    fetch = asyncio.ensure_future(thread.getmany({tp}, timeout=5))
    await asyncio.sleep(0)
    for waiter in fetcher._fetch_waiters:  # as aiokafka's abort_waiters
        waiter.set_exception(KafkaError("aborted"))
    with pytest.raises(KafkaError):
        await fetch
    assert not fetcher._fetch_waiters


async def test_a_fetch_loop_whose_fetch_waited_for_its_records_does_not_sleep_another_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    thread, _, _ = _lean_fetching(tmp_path)
    consumer: Any = thread.consumer
    app = consumer.app
    agent_queue = _agent_reading(app)
    tp = TP("events", 0)
    sleeps = _counting_sleeps(monkeypatch)
    fetcher = _one_fetch(consumer, _fetched(tp, range(3)))
    one_batch = consumer.getmany

    async def waited(timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        thread.fetch_waits += 1  # the fetch waited for its records: the loop went round meanwhile
        async for record in one_batch(timeout):
            yield record

    consumer.getmany = waited
    await asyncio.wait_for(consumer._drain_messages(fetcher), 5)
    assert [m.offset for m in agent_queue.get_nowait()] == [0, 1, 2]
    assert sleeps == []

    fetcher = _one_fetch(consumer, _fetched(tp, range(3, 6)))  # records there already: one turn
    await asyncio.wait_for(consumer._drain_messages(fetcher), 5)
    assert [m.offset for m in agent_queue.get_nowait()] == [3, 4, 5]
    assert sleeps == [0]
