"""A faust transport whose worker consumer honours the bus's `fetch_max_wait_ms`.

faust-streaming 0.15 hard-codes `fetch_max_wait_ms=1500` for its worker consumer. The local
Tansu broker answers a fetch only when that wait expires, so every faust hop would cost up to
1.5 s. faust looks transports up by URL scheme (entry point group `faust.transports`); this one
is registered as `tuned://` in pyproject.toml.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

from referral_bus.kafka.delivery import DeliveryFailed

DEFAULT_FETCH_MAX_WAIT_MS = 1500
#: How often a fetch held back during a rebalance checks whether the rebalance has ended.
REBALANCE_POLL_SECONDS = 0.01


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


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def fetch_max_wait_ms(app: Any) -> int:
    return int(getattr(app, "fetch_max_wait_ms", DEFAULT_FETCH_MAX_WAIT_MS))
