"""The busy tail of a worker's consumer (`bus/kafka/faust_transport.py`): how long it keeps polling
at the bus's own fetch wait after its last records, from the pace of the traffic it has just seen."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bus.faust_app import make_app
from bus.kafka.faust_transport import (
    BUSY_TAIL_MAX_S,
    LONE_QUIET_AFTER_S,
    QUIET,
    QUIET_AFTER_S,
    QUIET_SHARE,
    BusyTail,
    Consumer,
)
from bus.settings import KafkaSettings
from bus.upstream.faust_worker import FETCH_TIMEOUT_S


def fed(tail: BusyTail, start: float, gap: float, fetches: int) -> float:
    """Feed `tail` `fetches` fetches with records `gap` apart, busy from `start`; the last one's time."""
    at = start
    for _ in range(fetches):
        tail.records(at, after_quiet=False)
        at += gap
    return at - gap


def test_before_it_has_seen_a_gap_the_tail_is_the_plain_one() -> None:
    tail = BusyTail()
    assert tail.seconds() == QUIET_AFTER_S
    tail.records(10.0, after_quiet=False)
    assert tail.seconds() == QUIET_AFTER_S


def test_traffic_at_20_a_second_keeps_the_worker_busy_through_all_but_one_gap_in_a_thousand() -> None:
    """A mean gap of 50 ms: busy for ln(1000) of them (0.35 s), where the plain tail (0.25 s) lets
    0.67 in 100 Poisson gaps through, each record after them waiting on the idle wait."""
    tail = BusyTail()
    fed(tail, 0.0, 0.05, 100)
    assert tail.seconds() == pytest.approx(0.05 * math.log(1 / QUIET_SHARE))
    assert QUIET_AFTER_S < tail.seconds() < BUSY_TAIL_MAX_S
    assert math.exp(-20 * tail.seconds()) == pytest.approx(QUIET_SHARE)


def test_dense_traffic_keeps_the_plain_tail_and_sparse_traffic_gets_at_most_the_cap() -> None:
    dense, sparse = BusyTail(), BusyTail()
    fed(dense, 0.0, 0.01, 100)  # 100 fetches a second bring records
    fed(sparse, 0.0, 0.2, 100)  # 5 a second, each within the tail
    assert dense.seconds() == QUIET_AFTER_S
    assert sparse.seconds() == BUSY_TAIL_MAX_S


def test_the_tail_follows_the_pace_as_it_changes() -> None:
    tail = BusyTail()
    last = fed(tail, 0.0, 0.01, 100)
    fed(tail, last + 0.05, 0.05, 100)  # the traffic slows to 20 a second
    assert tail.seconds() == pytest.approx(0.05 * math.log(1 / QUIET_SHARE), rel=0.01)
    last = fed(tail, 100.0, 0.01, 100)  # and quickens again
    assert tail.seconds() == QUIET_AFTER_S


def test_records_that_came_alone_get_the_short_tail_and_the_next_within_it_the_traffic_s() -> None:
    tail = BusyTail()
    last = fed(tail, 0.0, 0.05, 100)
    traffic_tail = tail.seconds()
    tail.records(last + 30.0, after_quiet=True)  # after a quiet spell
    assert tail.seconds() == LONE_QUIET_AFTER_S
    tail.records(last + 30.05, after_quiet=False)
    assert tail.seconds() == pytest.approx(traffic_tail, rel=0.01)


def test_the_gap_that_ended_a_quiet_spell_is_not_the_traffic_s_pace() -> None:
    """A county's events, a few a minute, each a burst of two fetches 20 ms apart: the quiet
    spells between them do not lengthen the tail (each lone event would pay for its polls)."""
    tail = BusyTail()
    for minute in range(20):
        at = 20.0 * minute
        tail.records(at, after_quiet=True)
        tail.records(at + 0.02, after_quiet=False)
        assert tail.seconds() == QUIET_AFTER_S


def test_the_worker_consumer_fetches_for_as_long_as_its_busy_tail_says(tmp_path: Path) -> None:
    app = make_app("busy-tail-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    consumer = app.consumer
    assert isinstance(consumer, Consumer)
    assert consumer._fetch_timeout() == QUIET_AFTER_S
    clock = iter(0.05 * n for n in range(100))
    consumer._clock = lambda: next(clock)
    for _ in range(100):
        consumer._on_records()  # a fetch brought records, while busy
    assert consumer._fetch_timeout() == pytest.approx(0.05 * math.log(1 / QUIET_SHARE))
    consumer._fetch_wait_state = QUIET  # the idle wait, until records come
    assert consumer._fetch_timeout() == FETCH_TIMEOUT_S
