"""The faust worker's Kafka consumer and producer, where the bus overrides faust's own.

The bus's transport (`tuned://`, `bus/kafka/faust_transport.py`) is built on these classes; what
it adds (handing batches to agents, the fetch wait while an agent is behind) goes through public
attributes and the two functions at the end of this module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiokafka
from aiokafka.consumer.fetcher import FetchResult
from aiokafka.errors import ConsumerStoppedError
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.utils.futures import maybe_async

from bus.kafka.delivery import DeliveryFailed
from bus.upstream import lean_fetch
from bus.upstream.lean_produce import AppendState, LeanAIOKafkaProducer
from bus.upstream.registry import NO_ISSUE, workaround

#: faust's own worker fetch wait, for an app that sets none.
FAUST_FETCH_MAX_WAIT_MS = 1500
#: How often a fetch held back during a rebalance checks whether the rebalance has ended.
REBALANCE_POLL_SECONDS = 0.01
#: Records a fetched batch hands to the streams before it lets other tasks run (faust's figure).
DELIVERY_YIELD_EVERY = 100
#: How long the fetch loop waits for records before it goes round again (faust's figure), unless
#: the consumer asks for less (`_fetch_timeout`).
FETCH_TIMEOUT_S = 1.0

_DRIVER = "faust.transport.drivers.aiokafka"
_FETCHER = "aiokafka.consumer.fetcher:Fetcher"


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The thread in which faust runs its aiokafka consumer; it builds the worker consumer."""

    @workaround(
        replaces={f"{_DRIVER}:AIOKafkaConsumerThread._create_worker_consumer": "c179c0bdb9755c3a"},
        relies_on={"aiokafka.consumer.consumer:AIOKafkaConsumer.start": "5ba1baa38f6246a0"},
        issue=f"{NO_ISSUE}: faust passes a literal fetch_max_wait_ms=1500 and has no setting for it",
        recheck="faust still builds the consumer with a fixed wait (if it grew a setting, pass the "
                "bus's value through it and drop this override); aiokafka's start() still hands "
                "the consumer's `_fetch_max_wait_ms` to the fetcher it builds.")
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        """faust's worker consumer, fetching with the bus's wait instead of faust's 1500 ms.

        The local broker answers a fetch only when its wait expires, so every faust hop would
        cost up to 1.5 s (`../shared/BROKER.md`). aiokafka reads this attribute when it builds
        its fetcher in start(); the constructor call is faust's own.
        """
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms(self.app)
        return consumer

    @workaround(
        relies_on={f"{_DRIVER}:AIOKafkaConsumerThread.on_start": "675d03707bbecd3c"},
        issue=NO_ISSUE,
        recheck="faust's on_start still builds the aiokafka consumer in `_consumer` and starts it.")
    async def on_start(self) -> None:
        """faust's start of its aiokafka consumer, whose fetching then takes the lean path of
        `lean_fetch` (unless the app sets `lean_fetch` false)."""
        await super().on_start()
        if getattr(self.app, "lean_fetch", False) and self._consumer is not None:
            lean_fetch.install(self._consumer)


class LoopConsumerThread(ConsumerThread):
    """faust's consumer "thread" run as a service of the worker's own event loop, no thread.

    faust runs its aiokafka consumer in a thread with an event loop of its own, and every call
    from the worker to it (each fetch, commit, seek) crosses over and back through a method
    queue: two cross-thread wake-ups and both loops' turns per fetch that brings records, and
    the two threads contending for the GIL while the agents compute. For a router whose events
    come a few at a time that was a fifth of its Python per event (py-spy at 100 events/s,
    benchmarks/router_cpu.py). Here the consumer's service runs as a task of the worker's loop,
    and a call to it is a plain await; the aiokafka consumer (fetcher, heartbeats, commits) runs
    as tasks of that loop too, so an agent that computes for long delays them (a batch of
    `BATCH_MAX` events is well within the session timeout).
    """

    def __init__(self, consumer: Any, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)
        self._serving: asyncio.Task[None] | None = None

    @workaround(
        replaces={f"{_DRIVER}:AIOKafkaConsumerThread.start": "ecd8f1bcf3eadb5d"},
        relies_on={f"{_DRIVER}:AIOKafkaConsumerThread._serve": "584d278fb3680da7",
                   f"{_DRIVER}:AIOKafkaConsumerThread.stop": "22d5a8dad369a585"},
        issue=f"{NO_ISSUE} (mode's ServiceThread always starts a thread)",
        recheck="mode's ServiceThread.start still only marks the service started, starts a thread "
                "that runs `_serve()` in `thread_loop`, and waits for `_thread_running`, which "
                "`_serve` fulfils once the service has started (or fails with its crash); stop() "
                "still stops the service through `_stopped` and only joins the thread if any.")
    async def start(self) -> None:
        """mode's ServiceThread.start, with `_serve()` a task of the worker's loop, not a thread."""
        assert not self._thread_started.is_set()
        self._thread_started.set()
        self._thread_running = self.parent_loop.create_future()
        try:
            self._serving = self.parent_loop.create_task(self._serve())
            if not self.should_stop:
                await self._thread_running
        finally:
            self._thread_running = None

    @workaround(
        replaces={f"{_DRIVER}:AIOKafkaConsumerThread._gather_remaining_tasks": "72a184791b6c5837"},
        issue=NO_ISSUE,
        recheck="mode still sweeps every task of `thread_loop` when the thread's service stops.")
    async def _gather_remaining_tasks(self) -> None:
        """Nothing: mode cancels every task of the thread's loop when its service stops, which
        here is the worker's loop (the agents, faust's own services). The aiokafka consumer's
        tasks end with the consumer (`on_thread_stop` stops it)."""

    @workaround(
        replaces={f"{_DRIVER}:AIOKafkaConsumerThread.call_thread": "d1304f73ca65376d"},
        issue=NO_ISSUE,
        recheck="faust still reaches its aiokafka consumer only through call_thread/cast_thread "
                "(or directly from the thread's own service), and call_thread still only runs "
                "the coroutine function in the thread and returns its result.")
    async def call_thread(self, fun: Callable[..., Awaitable[Any] | Any], *args: Any, **kwargs: Any) -> Any:
        """Run `fun` (a coroutine function or a plain one, as mode's method queue takes) in the
        consumer's loop: this one, so simply call it."""
        return await maybe_async(fun(*args, **kwargs))

    @workaround(
        replaces={f"{_DRIVER}:AIOKafkaConsumerThread.getmany": "1b1c58046a9b2bb7"},
        relies_on={f"{_DRIVER}:AIOKafkaConsumerThread._fetch_records": "9e7369fc572de4d0",
                   f"{_FETCHER}.fetched_records": "e20ce0c8117f12d2",
                   f"{_FETCHER}._create_fetch_waiter": "65046fcd40e702ff",
                   f"{_FETCHER}.close": "eb8e175ce6f83cba",
                   "aiokafka.consumer.subscription_state:SubscriptionState.abort_waiters": "80faab43f57253ed"},
        issue=f"{NO_ISSUE} (a cost, not a bug)",
        recheck="faust's getmany still only calls `_fetch_records` in the consumer's thread with "
                "the consumer's max_poll_records, and `_fetch_records` still returns nothing while "
                "the flow is stopped, raises ConsumerStoppedError for a closed consumer or fetcher, "
                "and runs aiokafka's fetched_records in the subscription's fetch_context; "
                "fetched_records is still what `fetched_records` below copies (drain every "
                "partition's FetchResult up to max_records, drop unassigned partitions' results, "
                "raise a stored error when nothing else was drained, notify `_wait_consume_future` "
                "when a result is used up, otherwise wait for a future of `_fetch_waiters`, which "
                "the fetch routine resolves when records came, close() resolves and "
                "abort_waiters fails, or for the timeout).")
    async def getmany(self, active_partitions: set[Any] | None, timeout: float) -> Any:
        """faust's fetch from its aiokafka consumer, in this loop: the records fetched so far,
        else those of the next answer that brings any, within `timeout` seconds.

        faust's way goes through `call_thread` and aiokafka's `fetched_records`, which waits for
        records in `asyncio.wait([waiter], timeout)`: a timer, a done callback on the waiter that
        resolves `asyncio.wait`'s own future, which only then wakes this task, one turn of the
        event loop later; and a second callback removing the waiter from the fetcher's set. That
        turn and those handles came with every fetch that brings records (at 100 events/s, one
        per event; `benchmarks/router_cpu.py`). Here the fetch loop's task awaits the waiter
        itself, under a plain timer; `fetch_waits` counts the fetches that waited (the loop went
        round meanwhile, which `WorkerConsumer._drain_messages` needs to know).
        """
        if not self.consumer.flow_active:
            return {}
        consumer = self._ensure_consumer()
        fetcher = consumer._fetcher
        if consumer._closed or fetcher._closed:
            raise ConsumerStoppedError()
        with fetcher._subscriptions.fetch_context():
            return await self._fetched_records(fetcher, active_partitions, timeout, consumer._max_poll_records)

    #: Fetches that waited for records (see `getmany`).
    fetch_waits = 0

    async def _fetched_records(self, fetcher: Any, partitions: set[Any] | None, timeout: float,
                               max_records: int | None) -> dict[Any, list[Any]]:
        """aiokafka's `Fetcher.fetched_records`, the records' waiter awaited directly."""
        while True:
            if fetcher._subscriptions.reassignment_in_progress:
                self.fetch_waits += 1
                await fetcher._subscriptions.wait_for_assignment()
            start_time = time.monotonic()
            drained: dict[Any, list[Any]] = {}
            records = fetcher._records
            for tp in list(records):
                if partitions and tp not in partitions:
                    if not fetcher._subscriptions.is_assigned(tp):
                        del records[tp]  # results of a partition no longer assigned
                    continue
                res_or_error = records[tp]
                if type(res_or_error) is FetchResult:
                    got = res_or_error.getall(max_records)
                    if not res_or_error.has_more():
                        del records[tp]  # all consumed: the routine may fetch it again
                        fetcher._notify(fetcher._wait_consume_future)
                    if not got:
                        continue
                    drained[tp] = got
                    if max_records is not None:
                        max_records -= len(got)
                        if max_records <= 0:
                            break
                elif drained:
                    return drained  # the error is raised at the next call
                else:
                    del records[tp]
                    fetcher._notify(fetcher._wait_consume_future)
                    res_or_error.check_raise()
            if drained or not timeout:
                return drained
            waiter = self.thread_loop.create_future()
            waiters = fetcher._fetch_waiters
            waiters.add(waiter)
            timer = self.thread_loop.call_later(timeout, _time_out, waiter)
            self.fetch_waits += 1
            try:
                # Resolved by the routine when records came, by close(), failed by abort_waiters.
                timed_out = await waiter is _TIMED_OUT
            finally:
                timer.cancel()
                waiters.discard(waiter)
            if timed_out or fetcher._closed:
                return {}
            timeout = max(0.0, timeout - (time.monotonic() - start_time))


_TIMED_OUT = object()


def _time_out(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_TIMED_OUT)


class WorkerConsumer(faust_aiokafka.Consumer):
    """faust's consumer for the worker, with faust's fetch loop, its rebalance hold and its
    commit replaced. Records of the topics an agent reads in batches (`bus/kafka/batches.py`)
    go to `_hand_over`, which the transport's consumer implements."""

    @workaround(
        replaces={f"{_DRIVER}:Consumer._new_consumer_thread": "8fd0d41b15145615"},
        issue=NO_ISSUE,
        recheck="faust still builds its consumer thread in this method, with these arguments.")
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        """The consumer thread whose worker consumer uses the bus's fetch wait (`ConsumerThread`),
        run in the worker's own loop if the app asks for it (`consumer_in_worker_loop`)."""
        if getattr(self.app, "consumer_in_worker_loop", False):
            return LoopConsumerThread(self, loop=self.loop, beacon=self.beacon)
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @workaround(
        replaces={f"{_DRIVER}:Consumer.getmany": "e486c434b7928ee8"},
        relies_on={"faust.tables.recovery:Recovery.on_recovery_completed": "895e7c415a4d1379",
                   "faust.tables.recovery:Recovery._resume_streams": "fbe0f747b84c0b27",
                   "faust.transport.consumer:Consumer._is_changelog_tp": "0032e40d702f957e"},
        issue="related, fixed for other orderings: faust-streaming/faust#216 (PR #217), "
              "faust-streaming/faust#221 (PR #223)",
        recheck="whether faust still resumes flow control (which clears the stream queues) after "
                "seeking to the committed offsets at the end of a rebalance, with fetches able to "
                "run in between; if it now resumes before seeking, or drops such records itself "
                "(by generation id), this hold may go.")
    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        """faust's fetch, minus its rebalance race that silently skips records.

        At the end of a rebalance faust resumes the stream partitions, seeks them to the
        committed offsets, and only then resumes flow control — which CLEARS every stream
        queue. Records fetched in between (there are some whenever a backlog waits, e.g. after
        a crash) reach the agents' queues and are wiped; when the seek ran before that fetch,
        they are never fetched again, and faust takes the next offset it reads for a gap
        (compaction, transaction markers), acks the skipped ones, and commits past them:
        records lost for good. So records of stream partitions fetched while the app is still
        rebalancing are held here until the rebalance ends (queues cleared, read offsets
        reset), then handed on in order; changelog records pass at once (recovery reads them).
        If another rebalance starts meanwhile, they are dropped: the next assignment seeks to
        the committed offsets and fetches them again. (Rebalances are told apart by faust's
        count, not the generation id: the local broker numbers every generation 1.)
        """
        app: Any = self.app
        held: list[tuple[Any, Any]] = []
        rebalance = None
        async for tp, message in super().getmany(timeout):
            if not (held or app.rebalancing) or self._is_changelog_tp(tp):  # (faust's builds a set)
                yield tp, message
            else:
                if not held:  # the rebalance this fetch belongs to
                    rebalance = (app.rebalancing_count, app.consumer_generation_id)
                held.append((tp, message))
        if not held:
            return
        while (app.rebalancing and not self.should_stop
               and (app.rebalancing_count, app.consumer_generation_id) == rebalance):
            await asyncio.sleep(REBALANCE_POLL_SECONDS)
        if (app.rebalancing or self.should_stop or not self.flow_active
                or (app.rebalancing_count, app.consumer_generation_id) != rebalance):
            self.log.info("Dropped %d records fetched during a superseded rebalance", len(held))
            return
        for tp, message in held:
            yield tp, message

    @workaround(
        replaces={f"{_DRIVER}:Consumer._drain_messages": "8f35dd7a11144daa"},
        issue=f"{NO_ISSUE} (a cost, not a bug; faust-streaming/faust#229 is about the same "
              "per-record wait_first)",
        recheck="diff faust's new _drain_messages with this copy: the stop conditions, the "
                "errors it handles, the commit every `commit_every` acks, and the offsets, gaps "
                "and dropped records (done in `_deliver`) must match what faust now does.")
    async def _drain_messages(self, fetcher: Any) -> None:
        """faust's fetch loop, racing each fetched batch against a flow suspension, not each record.

        faust hands every record to the conductor inside `wait_first(callback, suspend_flow)`,
        which starts and cancels four tasks per record so that a rebalance can interrupt a
        delivery blocked on a full stream queue. Here the batch's records are delivered in one
        task raced the same way (with faust's Monitor sensor off, `BusApp`, 15-25 % less CPU per
        event for the router in paired runs of benchmarks/router.py). A suspension cancels the
        rest of the batch: records for the conductor stay undelivered and not marked read (faust
        marks them read unsent), records of topics read in batches are marked read but not
        acked (`_hand_over`); the rebalance seeks to the committed offsets and fetches them
        again. Offsets, gaps and commits are handled as faust does; commits every
        `commit_every` acks are checked between batches rather than between records.
        A batch whose hand-over cannot wait (`_delivers_at_once`: live traffic, a few records at
        a time) is delivered without the race: nothing else runs until it is done, so no
        suspension can come in the middle (the race's five tasks, started and cancelled, were
        the largest part of faust's cost per fetch that brings records).
        """
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        thread: Any = self._thread
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                waits = getattr(thread, "fetch_waits", None)
                batch = [record async for record in self.getmany(timeout=self._fetch_timeout())]
                # As faust, the loop must yield each time round, even when records were there
                # already: one turn of the loop (faust's `self.sleep(0)` starts, cancels and
                # awaits a task each time round). Not when the fetch waited for its records
                # (`LoopConsumerThread.getmany` counts it): the loop went round meanwhile, and
                # another turn per fetch that brings records would be for nothing.
                if waits is None or thread.fetch_waits == waits:
                    await asyncio.sleep(0)
                if not batch:
                    self._on_quiet()
                elif not self.should_stop:
                    self._on_records()
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if self._delivers_at_once(batch):
                        await self._deliver(batch)
                    else:
                        await self.wait_first(self._deliver(batch), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    @workaround(
        relies_on={"faust.transport.consumer:Consumer._add_gap": "f1cc1db634f5ea09",
                   "faust.transport.consumer:Consumer.perform_seek": "2b4ceebd23deb7ee"},
        issue=NO_ISSUE,
        recheck="faust still records gaps with _add_gap(tp, from, to), keeps the last offset read "
                "per partition in `_read_offset`, and resets it when it seeks to the committed "
                "offsets.")
    async def _deliver(self, batch: list[tuple[Any, Any]]) -> None:
        """Hand a fetched batch on in order: records of topics read in batches (`batches.py`) to
        their agent as lists, every other record to the conductor, as faust's loop does (its
        part of `_drain_messages`)."""
        callback = self.callback
        read_offsets = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        batch_readers: dict[str, Any] = getattr(self.app, "batch_readers", {})
        in_batches: dict[str, list[Any]] = {}
        for n, (tp, message) in enumerate(batch, 1):
            if not n % DELIVERY_YIELD_EVERY:
                await asyncio.sleep(0)
            offset = message.offset
            read = read_offsets[tp]
            if read is not None and offset < read:
                continue  # read already (faust drops it the same way)
            if read and offset - read > 1 and acks_enabled_for(message.topic):
                await self._add_gap(tp, read + 1, offset)  # lets other tasks run
                if self.suspend_flow.is_set():
                    return  # as a suspension cancels a raced delivery here (`_drain_messages`)
            if message.topic in batch_readers:
                in_batches.setdefault(message.topic, []).append(message)
            else:
                await callback(message)
            read_offsets[tp] = offset
        for topic, messages in in_batches.items():
            await self._hand_over(batch_readers, topic, messages)

    async def _hand_over(self, batch_readers: dict[str, Any], topic: str, messages: list[Any]) -> None:
        """Give `messages` (records of `topic`, in order) to the agent reading it in batches."""
        raise NotImplementedError("the bus's transport consumer hands batches over")

    def _hands_over_at_once(self, batch_readers: dict[str, Any], topic: str) -> bool:
        """Whether `_hand_over` of fewer than `DELIVERY_YIELD_EVERY` records of `topic` would
        finish without waiting (the agent has started and its queue has room), flow active."""
        return False

    @workaround(
        relies_on={"faust.transport.consumer:Consumer._add_gap": "f1cc1db634f5ea09",
                   "faust.transport.consumer:Consumer.stop_flow": "aa77389dc23a1981",
                   "faust.app.base:App._on_partitions_revoked": "c1abd58dcb37f0a2"},
        issue=NO_ISSUE,
        recheck="faust still stops the consumer's flow (`suspend_flow` set, `flow_active` false) "
                "and suspends the app's flow control before a rebalance clears the agents' queues, and its "
                "consumer's `_add_gap` is still the only await of `_deliver` besides the hand-over "
                "and the conductor's callback; mode's FlowControlQueue.put still waits only while "
                "the flow control is suspended or the queue is full.")
    def _delivers_at_once(self, batch: list[tuple[Any, Any]]) -> bool:
        """Whether `_deliver(batch)` runs to its end without letting another task run: a batch
        too small to yield (`DELIVERY_YIELD_EVERY`), flow active, every record for an agent
        reading in batches whose hand-over will not wait (`_hands_over_at_once`). (A gap in the
        offsets lets other tasks run once; `_deliver` checks for a suspension after it.)"""
        if (len(batch) >= DELIVERY_YIELD_EVERY or not self.flow_active or self.suspend_flow.is_set()
                or not self.app.flow_control.is_active()):
            return False
        batch_readers: dict[str, Any] = getattr(self.app, "batch_readers", {})
        checked = None  # a batch is mostly of one topic: each run of a topic checked once
        for _, message in batch:
            topic = message.topic
            if topic != checked:
                if topic not in batch_readers or not self._hands_over_at_once(batch_readers, topic):
                    return False
                checked = topic
        return True

    def _fetch_timeout(self) -> float:
        """How long the fetch loop waits for records before it goes round again."""
        return FETCH_TIMEOUT_S

    def _on_quiet(self) -> None:
        """No record came within `_fetch_timeout()` (the transport's consumer polls less often then)."""

    def _on_records(self) -> None:
        """A fetch brought records, about to be delivered."""

    @workaround(
        replaces={f"{_DRIVER}:Consumer._commit": "91c201528438395b"},
        relies_on={"faust.transport.consumer:Consumer._commit_offsets": "86b3e9b0aec773ac"},
        issue=f"{NO_ISSUE} (robinhood/faust#76 made faust crash when an attached message fails "
              "during a commit; a failed background send is still only logged)",
        recheck="faust still flushes the producer before it calls _commit, still swallows what a "
                "commit raises (if it now stops the worker, raising would do), and _commit still "
                "takes the offsets and returns whether it committed.")
    async def _commit(self, offsets: Any) -> bool:
        """faust's commit, refused past a failed delivery, which crashes the worker.

        faust has flushed the producer by now; the app's delivery guard says whether every
        output sent so far reached the broker. If not, the worker crashes (it exits 1;
        restarted, it reads again from the last commit). Crashing here rather than raising:
        faust swallows what its error-callback commit raises.
        """
        guard = getattr(self.app, "delivery_guard", None)
        if guard is not None:
            try:
                await guard.settle(timeout=self.app.conf.producer_request_timeout)
                guard.raise_if_failed()
            except DeliveryFailed as exc:
                self.log.error("Not committing past a failed delivery: %r", exc)
                await self.crash(exc)
                return False
        return bool(await super()._commit(offsets))


class Producer(faust_aiokafka.Producer):
    """faust's producer for the worker: its aiokafka producer writes produce requests with
    `struct`, every delivery is watched by the app's delivery guard, and a failed one crashes the
    worker at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: What `append_outputs` keeps for this producer between calls.
        self.appends = AppendState()
        self._crashing: asyncio.Future[None] | None = None

    @workaround(
        relies_on={f"{_DRIVER}:Producer.on_start": "a1601325eb84f271",
                   "mode.services:Service.crash": "6e0b5672cd830081"},
        issue=f"{NO_ISSUE} (faust only logs a failed background send; its commit stops the worker "
              "only when an attached message fails during it)",
        recheck="faust's producer still starts before the agents send anything, and mode's "
                "Service.crash still marks the worker crashed (it then stops and exits non-zero).")
    async def on_start(self) -> None:
        """faust's start, with the app's delivery guard set to crash the worker the moment a
        delivery fails (`_crash_worker`)."""
        guard = getattr(self.app, "delivery_guard", None)
        if guard is not None:
            guard.on_failure = self._crash_worker
        await super().on_start()

    def _crash_worker(self, failure: DeliveryFailed) -> None:
        """Crash the worker, which stops and exits non-zero; restarted, it reads again from its last
        commit. At once, not at its next commit: that would wait for an offset commit in flight,
        which aiokafka retries for as long as the broker does not answer."""
        self.log.error("A delivery failed: crashing the worker before it commits past it: %r", failure)
        if self._crashing is None:
            self._crashing = asyncio.ensure_future(self._crash_with(failure))

    async def _crash_with(self, failure: DeliveryFailed) -> None:
        try:  # raised, so that mode's log of the crash has its traceback and cause
            raise failure
        except DeliveryFailed:
            await self.app.crash(failure)

    @property
    @workaround(
        replaces={f"{_DRIVER}:Producer._producer_type": "1125698750a34000"},
        relies_on={f"{_DRIVER}:Producer._new_producer": "a1bef421b9909a72"},
        issue=NO_ISSUE,
        recheck="faust still builds its aiokafka producer as `_producer_type(**settings)`.")
    def _producer_type(self) -> type[aiokafka.AIOKafkaProducer]:
        """aiokafka's producer, its produce requests written and read with `struct`
        (`bus/upstream/lean_produce.py`)."""
        return LeanAIOKafkaProducer

    @workaround(
        replaces={f"{_DRIVER}:Producer.send": "72f84e7a1b56328e"},
        relies_on={"faust.topics:Topic.publish_message": "5233ad2ac1e56018"},
        issue=NO_ISSUE,
        recheck="every message a worker produces (agents' sends, table changelogs from faust's "
                "buffer) still reaches the broker through Producer.send, and send still returns "
                "the delivery's future.")
    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any, *, transactional_id: str | None = None) -> Any:
        """faust's send, every delivery of which the app's delivery guard watches.

        Every message a worker produces passes here: an agent's sends, and the writes faust makes
        in the background (table changelogs, which the alerts tables also watch from the moment
        they are buffered: faust's flush can return before the last one gets here). A send that
        raises (no room in the buffer within the request timeout, no metadata), or a delivery
        the broker does not acknowledge, fails the guard for good, which crashes the worker at
        once (`on_start`); the consumer's check before each commit refuses it too.
        """
        guard = getattr(self.app, "delivery_guard", None)
        try:
            future = await super().send(topic, key, value, partition, timestamp, headers,
                                        transactional_id=transactional_id)
        except Exception as exc:
            if guard is not None:
                guard.trip(exc)
            raise
        if guard is not None:
            guard.track(future)
        return future


def fetch_max_wait_ms(app: Any) -> int:
    """The worker's fetch wait: the app's `fetch_max_wait_ms` (`BusApp`), else faust's own."""
    return int(getattr(app, "fetch_max_wait_ms", FAUST_FETCH_MAX_WAIT_MS))


def idle_fetch_max_wait_ms(app: Any) -> int:
    """The worker's fetch wait while its topics are quiet: the app's `idle_fetch_max_wait_ms`
    (`BusApp`), else its fetch wait."""
    return int(getattr(app, "idle_fetch_max_wait_ms", 0)) or fetch_max_wait_ms(app)


@workaround(
    relies_on={f"{_DRIVER}:AIOKafkaConsumerThread._ensure_consumer": "a2c77687801ca0e7",
               "aiokafka.consumer.fetcher:Fetcher._get_actions_per_node": "fd175a69d8d4f9b9"},
    issue=NO_ISSUE,
    recheck="faust's consumer thread still keeps its aiokafka consumer in `_consumer`, aiokafka's "
            "consumer its fetcher in `_fetcher`, and the fetcher reads `_fetch_max_wait_ms` "
            "afresh for each fetch request it builds.")
def set_fetch_max_wait(consumer: faust_aiokafka.Consumer, wait_ms: int) -> None:
    """Change the running worker consumer's fetch wait, from the next fetch request on.

    aiokafka has no setter: its fetcher reads this attribute for each fetch request it builds, in
    the consumer's thread (an int's assignment is atomic). Nothing happens before the consumer's
    thread has started it.
    """
    thread: Any = consumer._thread
    fetcher = getattr(thread._consumer, "_fetcher", None)
    if fetcher is not None:
        fetcher._fetch_max_wait_ms = wait_ms
