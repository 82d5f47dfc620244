"""A faust transport whose worker consumer honours the bus's `fetch_max_wait_ms`.

faust-streaming 0.15 hard-codes `fetch_max_wait_ms=1500` for its worker consumer. The local
Tansu broker answers a fetch only when that wait expires, so every faust hop would cost up to
1.5 s. faust looks transports up by URL scheme (entry point group `faust.transports`); this one
is registered as `tuned://` in pyproject.toml. Its consumer also holds records fetched during a
rebalance, hands fetched records to the streams a batch at a time, polls the broker less often
while an agent reading in batches is behind, and refuses to commit past a failed delivery, which
its producer reports (each method says why).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiokafka
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

from bus.kafka.batches import BATCH_MAX, BATCHES_WAITING
from bus.kafka.delivery import DeliveryFailed

DEFAULT_FETCH_MAX_WAIT_MS = 1500
#: How often a fetch held back during a rebalance checks whether the rebalance has ended.
REBALANCE_POLL_SECONDS = 0.01
#: How often a hand-over to an agent whose queue is full checks it again.
HAND_OVER_POLL_SECONDS = 0.005
#: Records a fetched batch hands to the streams before it lets other tasks run (faust's figure).
DELIVERY_YIELD_EVERY = 100
#: The consumer's fetch wait while an agent reading in batches is behind: its queue is full, and
#: fetches bring at least a batch (`BATCH_MAX`) at a time.
#: The consumer's thread fetches on its own: under a backlog it soon holds every record there is,
#: and then polls the end of each partition once per fetch wait, for nothing, while the agent
#: works through what it has; every poll costs that thread and the broker CPU the agent could
#: use. Router-only passes of 60k events, paired: 1.3-1.7k events/s polling every 10 ms, 1.6-2.1k
#: with this wait, and half the broker's CPU. The bus's own wait returns as soon as the agent has
#: caught up (its queue is empty at a hand-over); the first records after a backlog may wait up
#: to this long, once.
BACKLOG_FETCH_MAX_WAIT_MS = 250


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The thread in which faust runs its aiokafka consumer; it builds the worker consumer."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it builds its fetcher in start(); faust offers no
        # setting for it, and the constructor call above is faust's own.
        consumer._fetch_max_wait_ms = fetch_max_wait_ms(self.app)
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
            if self._is_changelog_tp(tp) or not (held or app.rebalancing):
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
        again. Offsets, gaps and
        commits are handled as faust does; commits every `commit_every` acks are checked
        between batches rather than between records.
        """
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                batch = [record async for record in self.getmany(timeout=1.0)]
                await self.sleep(0)  # as faust: a loop of empty fetches must still yield
                if batch and not self.should_stop:
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
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

    async def _deliver(self, batch: list[tuple[Any, Any]]) -> None:
        """Hand a fetched batch on in order: records of topics read in batches (`batches.py`) to
        their agent as lists, every other record to the conductor, as faust's loop does."""
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
                await self._add_gap(tp, read + 1, offset)
            if message.topic in batch_readers:
                in_batches.setdefault(message.topic, []).append(message)
            else:
                await callback(message)
            read_offsets[tp] = offset
        for topic, messages in in_batches.items():
            await self._hand_over(batch_readers, topic, messages)

    async def _hand_over(self, batch_readers: dict[str, Any], topic: str, messages: list[Any]) -> None:
        """Put `messages` on the queue of `topic`'s agent, `BATCH_MAX` at a time, with at most
        `BATCHES_WAITING` batches waiting there: beyond, the fetching waits for the agent.

        The agent registers its queue when it starts: until then (at start), wait. Marked read
        before they are handed over: if a rebalance cuts the hand-over short, the new assignment
        seeks to the committed offsets, which resets what was read. While the agent is behind,
        the consumer fetches less often (`BACKLOG_FETCH_MAX_WAIT_MS`).
        """
        while (channel := batch_readers[topic]) is None:
            await asyncio.sleep(HAND_OVER_POLL_SECONDS)
        queue = channel.queue
        if queue.empty():
            self._set_fetch_wait(agent_behind=False)
        # Live traffic comes a few records per fetch, a backlog at least a batch at a time: a
        # queue full of small batches is a short stall of the agent, not a reason to poll less.
        reading_a_backlog = len(messages) >= BATCH_MAX
        for start in range(0, len(messages), BATCH_MAX):
            if queue.qsize() >= BATCHES_WAITING:
                if reading_a_backlog:
                    self._set_fetch_wait(agent_behind=True)
                while queue.qsize() >= BATCHES_WAITING:
                    await asyncio.sleep(HAND_OVER_POLL_SECONDS)
            await queue.put(messages[start:start + BATCH_MAX])

    def _set_fetch_wait(self, *, agent_behind: bool) -> None:
        """The bus's fetch wait, or `BACKLOG_FETCH_MAX_WAIT_MS` while an agent is behind."""
        consumer = self._thread._consumer  # None until the consumer's thread has started
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is not None:
            wait = fetch_max_wait_ms(self.app)
            # aiokafka's fetcher reads this attribute for each fetch request it builds, in the
            # consumer's thread (an int's assignment is atomic); faust offers no setting for it.
            fetcher._fetch_max_wait_ms = max(wait, BACKLOG_FETCH_MAX_WAIT_MS) if agent_behind else wait

    async def _commit(self, offsets: Any) -> bool:
        # faust has flushed the producer by now; refuse to commit past a failed delivery, and
        # crash the worker (it exits 1; restarted, it reads again from the last commit). Crashing
        # here rather than raising: faust swallows what its error-callback commit raises.
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
    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any, *, transactional_id: str | None = None) -> Any:
        """faust's send, every delivery of which the app's delivery guard watches.

        Every message a worker produces passes here: an agent's sends, and the writes faust makes
        in the background (table changelogs, which the alerts tables also watch from the moment
        they are buffered: faust's flush can return before the last one gets here). A send that
        raises (no room in the buffer within the request timeout, no metadata) fails the guard
        for good; a delivery the broker does not acknowledge fails it when the consumer checks
        it before committing.
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


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer


def fetch_max_wait_ms(app: Any) -> int:
    return int(getattr(app, "fetch_max_wait_ms", DEFAULT_FETCH_MAX_WAIT_MS))
