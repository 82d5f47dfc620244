"""A faust transport whose worker consumer honours the bus's `fetch_max_wait_ms`.

faust-streaming 0.15 hard-codes `fetch_max_wait_ms=1500` for its worker consumer. The local
Tansu broker answers a fetch only when that wait expires, so every faust hop would cost up to
1.5 s. faust looks transports up by URL scheme (entry point group `faust.transports`); this one
is registered as `tuned://` in pyproject.toml.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

DEFAULT_FETCH_MAX_WAIT_MS = 1500


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


    async def _commit(self, offsets: Any) -> bool:
        # faust has flushed the producer by now; refuse to commit past a failed delivery.
        guard = getattr(self.app, "delivery_guard", None)
        if guard is not None:
            guard.raise_if_failed()
        return bool(await super()._commit(offsets))


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def fetch_max_wait_ms(app: Any) -> int:
    return int(getattr(app, "fetch_max_wait_ms", DEFAULT_FETCH_MAX_WAIT_MS))
