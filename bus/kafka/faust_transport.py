"""A faust transport whose worker consumer honours the bus's `fetch_max_wait_ms`.

faust-streaming 0.15 hard-codes `fetch_max_wait_ms=1500` for its worker consumer. The local
Tansu broker answers a fetch only when that wait expires, so every faust hop would cost up to
1.5 s. faust looks transports up by URL scheme (entry point group `faust.transports`); this one
is registered as `tuned://` in pyproject.toml. Its consumer and producer are faust's with the
overrides of `bus/upstream/faust_worker.py` (the fetch wait, records fetched during a rebalance
held, fetched records handed to the streams a batch at a time, no commit past a failed delivery,
every send watched); here, what the bus does with them: hand the batches of topics read in
batches to their agent, poll the broker less often while that agent is behind, and less often
again while the worker's topics are quiet.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from bus.kafka.batches import BATCH_MAX, BATCHES_WAITING
from bus.upstream.faust_worker import (
    FETCH_TIMEOUT_S,
    Producer,
    WorkerConsumer,
    fetch_max_wait_ms,
    idle_fetch_max_wait_ms,
    set_fetch_max_wait,
)

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


#: The states of the worker's fetch wait (`Consumer._set_fetch_wait`). Quiet: no records for
#: `QUIET_AFTER_S`, until records come; the wait is then the app's idle wait
#: (REFERRAL_BUS_IDLE_FETCH_MAX_WAIT_MS).
#: Each empty poll costs the worker ~0.5 ms of CPU and the broker as much (aiokafka encodes and
#: decodes every request in Python): polling every 10 ms kept an idle router at ~5 % of a core
#: and its broker at ~5 %, 100 ms at ~1 % each (benchmarks/router_cpu.py). On Tansu, which
#: answers a waiting fetch only at its next check, the first record after a quiet spell may wait
#: up to about half the idle wait; on Apache Kafka, which answers on arrival, not at all.
BUSY, BEHIND, QUIET = "busy", "behind", "quiet"
#: How long a worker keeps polling at the bus's own wait after its last record. Every poll of
#: that tail is paid by each event that arrives alone: 1 s cost a lone event ~70 ms of the
#: router's CPU (and as much of the broker's). Events of a steady 20/s arrive within 230 ms of
#: the one before 99 times in 100 (Poisson), so at that rate they keep the bus's wait and its
#: latency; sparser events may pay up to about half the idle wait on Tansu.
QUIET_AFTER_S = 0.25
#: The same tail after records that came alone: the first after a quiet spell, of which a county's
#: bus sees a few a minute. A record within it is traffic, and keeps the full tail from then on.
#: At a steady 20/s (Poisson) a record comes within 100 ms of the one before 86 times in 100: of
#: the records that end a quiet spell (0.67 in 100 with the full tail alone), 14 in 100 are
#: followed by another quiet spell, so 0.77 in 100 records wait on the idle wait instead of 0.67.
LONE_QUIET_AFTER_S = 0.1


class Consumer(WorkerConsumer):
    """The worker consumer of `tuned://`: hands the records of topics read in batches to their
    agent, and fetches at the wait that suits the traffic: the bus's own, longer while an agent is
    behind, longer again while the topics are quiet."""

    _fetch_wait_state: str = BUSY
    #: The last records came after a quiet spell (`LONE_QUIET_AFTER_S`).
    _came_alone: bool = False

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
        if queue.empty() and self._fetch_wait_state == BEHIND:
            self._set_fetch_wait(BUSY)
        # Live traffic comes a few records per fetch, a backlog at least a batch at a time: a
        # queue full of small batches is a short stall of the agent, not a reason to poll less.
        reading_a_backlog = len(messages) >= BATCH_MAX
        for start in range(0, len(messages), BATCH_MAX):
            if queue.qsize() >= BATCHES_WAITING:
                if reading_a_backlog:
                    self._set_fetch_wait(BEHIND)
                while queue.qsize() >= BATCHES_WAITING:
                    await asyncio.sleep(HAND_OVER_POLL_SECONDS)
            await queue.put(messages[start:start + BATCH_MAX])

    def _hands_over_at_once(self, batch_readers: dict[str, Any], topic: str) -> bool:
        """The agent reading `topic` has started and its queue has room for one more batch: a
        hand-over of fewer than `BATCH_MAX` records puts them there without waiting."""
        channel = batch_readers.get(topic)
        return channel is not None and channel.queue.qsize() < BATCHES_WAITING

    def _fetch_timeout(self) -> float:
        """While busy, the fetch loop goes round after `QUIET_AFTER_S` without records
        (`LONE_QUIET_AFTER_S` after records that came alone), to poll less often from then on."""
        if self._fetch_wait_state != BUSY:
            return FETCH_TIMEOUT_S
        return LONE_QUIET_AFTER_S if self._came_alone else QUIET_AFTER_S

    def _on_quiet(self) -> None:
        """No record for `QUIET_AFTER_S`: poll at the app's idle wait until records come."""
        if self._fetch_wait_state != BEHIND:
            self._set_fetch_wait(QUIET)

    def _on_records(self) -> None:
        """Records again after a quiet spell: the bus's own wait from the next fetch on (while an
        agent is behind, `_hand_over` lengthens it again), for the short tail of records that
        came alone; records while busy: the full tail."""
        self._came_alone = self._fetch_wait_state == QUIET
        if self._came_alone:
            self._set_fetch_wait(BUSY)

    def _set_fetch_wait(self, state: str) -> None:
        """The worker's fetch wait: the bus's own (`BUSY`), `BACKLOG_FETCH_MAX_WAIT_MS` while an
        agent is behind (`BEHIND`), or the app's idle wait while its topics are quiet (`QUIET`)."""
        self._fetch_wait_state = state
        wait = fetch_max_wait_ms(self.app)
        if state == BEHIND:
            wait = max(wait, BACKLOG_FETCH_MAX_WAIT_MS)
        elif state == QUIET:
            wait = max(wait, idle_fetch_max_wait_ms(self.app))
        set_fetch_max_wait(self, wait)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer
