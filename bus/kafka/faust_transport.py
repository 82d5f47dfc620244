"""A faust transport whose worker consumer honours the bus's `fetch_max_wait_ms`.

faust-streaming 0.15 hard-codes `fetch_max_wait_ms=1500` for its worker consumer. The local
Tansu broker answers a fetch only when that wait expires, so every faust hop would cost up to
1.5 s. faust looks transports up by URL scheme (entry point group `faust.transports`); this one
is registered as `tuned://` in pyproject.toml. Its consumer and producer are faust's with the
overrides of `bus/upstream/faust_worker.py` (the fetch wait, records fetched during a rebalance
held, fetched records handed to the streams a batch at a time, no commit past a failed delivery,
every send watched); here, what the bus does with them: hand the batches of topics read in
batches to their agent, and poll the broker less often while that agent is behind.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from bus.kafka.batches import BATCH_MAX, BATCHES_WAITING
from bus.upstream.faust_worker import Producer, WorkerConsumer, fetch_max_wait_ms, set_fetch_max_wait

#: How often a hand-over to an agent whose queue is full checks it again.
HAND_OVER_POLL_SECONDS = 0.005

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


class Consumer(WorkerConsumer):
    """The worker consumer of `tuned://`: hands the records of topics read in batches to their agent."""

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
        wait = fetch_max_wait_ms(self.app)
        set_fetch_max_wait(self, max(wait, BACKLOG_FETCH_MAX_WAIT_MS) if agent_behind else wait)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer
