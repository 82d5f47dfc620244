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
import math
import time
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


#: The states of the worker's fetch wait (`Consumer._set_fetch_wait`). Quiet: no records for the
#: busy tail (`BusyTail`), until records come; the wait is then the app's idle wait
#: (REFERRAL_BUS_IDLE_FETCH_MAX_WAIT_MS).
#: Each empty poll costs the worker ~0.2 ms of CPU with the lean fetch (~0.5 ms with aiokafka's
#: own, which encodes and decodes every request in Python) and the broker about as much: polling
#: every 10 ms kept an idle router at ~5 % of a core and its broker at ~5 %, 100 ms at ~1 % each
#: (benchmarks/router_cpu.py). On Tansu, which answers a waiting fetch only when its wait ends,
#: the first record after a quiet spell may wait up to the idle wait (half of it on average); on
#: Apache Kafka, which answers on arrival, not at all.
BUSY, BEHIND, QUIET = "busy", "behind", "quiet"
#: How long a worker keeps polling at the bus's own wait after its last record, at the least. Every
#: poll of that tail is paid by each event that arrives alone: 1 s cost a lone event ~70 ms of the
#: router's CPU (and as much of the broker's). Traffic that has shown its pace gets a longer tail
#: (`BusyTail`); sparser events may pay up to the idle wait on Tansu (half of it on average).
QUIET_AFTER_S = 0.25
#: The same tail after records that came alone: the first after a quiet spell, of which a county's
#: bus sees a few a minute. A record within it is traffic, and keeps the full tail from then on.
#: At a steady 20/s (Poisson) a record comes within 100 ms of the one before 86 times in 100: of
#: the records that end a quiet spell, 14 in 100 are followed by another quiet spell.
#: `benchmarks/fetch_waits.py` (Poisson arrivals, a model of the fetch loop on Tansu): it costs a
#: lone event ~8 empty polls (~2 ms of the worker's CPU; 1.4 % more polls at a record a minute);
#: without it, at 20/s 1.1 records in 100 find a worker quiet instead of 0.23 (the alert path's
#: p99 crosses two hops), at 10/s a hop's mean wait is 15.0 ms instead of 6.8, at 5/s 39.6
#: instead of 18.6.
LONE_QUIET_AFTER_S = 0.1
#: The share of records that should find the worker quiet, and so wait on the idle wait at its
#: hop, while traffic keeps its pace: the busy tail lasts as long as a gap between records that
#: independent (Poisson) arrivals leave that rarely, ln(1000) ≈ 6.9 mean gaps (0.35 s at 20/s;
#: QUIET_AFTER_S alone misses 0.67 in 100 there, right at the alert path's p99).
QUIET_SHARE = 1 / 1000
#: The longest busy tail: traffic too sparse for a tail this long to miss only `QUIET_SHARE` of
#: its records (under ~17 records/s) gets this one, so that a gap costs at most ~40 empty polls
#: (~9 ms of the worker's CPU; the idle wait's would be 4). A simulation of Poisson arrivals
#: (fetches every 10 ms while busy, every 100 ms while quiet): at 20/s, 0.10 in 100 records find
#: the worker quiet instead of 0.69, for 0.01 ms more CPU per record in empty polls; at 10/s,
#: 2.7 in 100 instead of 10.4, +0.2 ms; at 3-5/s, where most records find it quiet either way,
#: +0.7 ms (0.5 s cost +1.0 ms there for 20/s's same 0.10 in 100).
BUSY_TAIL_MAX_S = 0.4
#: The weight of the newest gap in the running mean of the gaps between fetches that brought
#: records (a mean of about the last 16: its spread, ±18 % for Poisson gaps, moves the share
#: that finds the worker quiet from 1 in 1000 to about 2).
GAP_WEIGHT = 1 / 16
#: Gaps of independent arrivals exceed t with chance exp(-t / mean): the busy tail, in mean gaps.
_MEAN_GAPS_OF_TAIL = -math.log(QUIET_SHARE)


class BusyTail:
    """How long a worker keeps polling at the bus's own wait after the last fetch that brought
    records before it goes quiet: as long as the traffic it has just seen leaves a gap between
    records only once in `1 / QUIET_SHARE` (from the running mean of those gaps), at least
    `QUIET_AFTER_S`, at most `BUSY_TAIL_MAX_S`; `lone_tail_s` after records that came alone.

    Only the gaps seen while busy enter the mean: the one that ended a quiet spell is not the
    traffic's pace but its absence (a county's few events a minute, each a short burst of
    records, keep a short mean and the tail at `QUIET_AFTER_S`). Times are the caller's
    monotonic clock, in seconds.
    """

    __slots__ = ("_came_alone", "_last_records_at", "_lone_tail_s", "_mean_gap")

    def __init__(self, lone_tail_s: float = LONE_QUIET_AFTER_S) -> None:
        self._lone_tail_s = lone_tail_s
        self._came_alone = False
        self._last_records_at: float | None = None
        self._mean_gap: float | None = None

    def records(self, at: float, *, after_quiet: bool) -> None:
        """A fetch brought records `at`; `after_quiet`: the worker was quiet until then."""
        if after_quiet:
            self._came_alone = True
        else:
            self._came_alone = False
            if self._last_records_at is not None:
                gap = at - self._last_records_at
                mean = self._mean_gap
                self._mean_gap = gap if mean is None else mean + GAP_WEIGHT * (gap - mean)
        self._last_records_at = at

    def seconds(self) -> float:
        """How long after the last records the worker goes quiet if no more come."""
        if self._came_alone:
            return self._lone_tail_s
        if self._mean_gap is None:
            return QUIET_AFTER_S
        return min(BUSY_TAIL_MAX_S, max(QUIET_AFTER_S, self._mean_gap * _MEAN_GAPS_OF_TAIL))


class Consumer(WorkerConsumer):
    """The worker consumer of `tuned://`: hands the records of topics read in batches to their
    agent, and fetches at the wait that suits the traffic: the bus's own, longer while an agent is
    behind, longer again while the topics are quiet."""

    _fetch_wait_state: str = BUSY
    _busy_tail: BusyTail
    #: The clock of the busy tail's record times.
    _clock = staticmethod(time.monotonic)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._busy_tail = BusyTail()

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
        """While busy, the fetch loop goes round after the busy tail without records
        (`BusyTail`), to poll less often from then on."""
        if self._fetch_wait_state != BUSY:
            return FETCH_TIMEOUT_S
        return self._busy_tail.seconds()

    def _on_quiet(self) -> None:
        """No record for the busy tail: poll at the app's idle wait until records come."""
        if self._fetch_wait_state != BEHIND:
            self._set_fetch_wait(QUIET)

    def _on_records(self) -> None:
        """Records again after a quiet spell: the bus's own wait from the next fetch on (while an
        agent is behind, `_hand_over` lengthens it again), for the short tail of records that
        came alone; records while busy: the tail that the traffic's pace asks for."""
        after_quiet = self._fetch_wait_state == QUIET
        self._busy_tail.records(self._clock(), after_quiet=after_quiet)
        if after_quiet:
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
