"""The model of the worker's fetch loop behind `benchmarks/fetch_waits.py`: fetches answered when their
wait ends (as Tansu does), the worker quiet after its tail without records."""

from __future__ import annotations

import pytest

from benchmarks.fetch_waits import FixedTail, NeverQuiet, fetch_loop
from bus.kafka.faust_transport import BusyTail


def test_a_record_that_finds_the_worker_quiet_waits_for_the_idle_wait_to_end() -> None:
    outcome = fetch_loop([0.05], FixedTail(0.25), busy_wait_s=0.01, idle_wait_s=0.1)
    assert outcome.found_quiet_pct == 100
    assert outcome.wait_mean_ms == pytest.approx(50)
    assert outcome.fetches_per_record == 1


def test_a_record_within_the_tail_finds_the_worker_busy() -> None:
    # The first answered at 0.1 s; the worker polls every 10 ms from then on, for 0.25 s.
    outcome = fetch_loop([0.05, 0.203], FixedTail(0.25), busy_wait_s=0.01, idle_wait_s=0.1)
    assert outcome.found_quiet_pct == 50
    assert outcome.wait_p99_ms == pytest.approx(50)
    assert outcome.wait_mean_ms == pytest.approx((50 + 7) / 2)
    assert outcome.fetches_per_record == (1 + 11) / 2


def test_without_a_lone_tail_the_record_after_a_lone_one_waits_on_the_idle_wait() -> None:
    times = [0.05, 0.14]
    with_tail = fetch_loop(times, BusyTail(lone_tail_s=0.1), busy_wait_s=0.01, idle_wait_s=0.1)
    without = fetch_loop(times, BusyTail(lone_tail_s=0.0), busy_wait_s=0.01, idle_wait_s=0.1)
    assert (with_tail.found_quiet_pct, without.found_quiet_pct) == (50, 100)
    assert with_tail.wait_mean_ms < without.wait_mean_ms


def test_a_worker_that_never_goes_quiet_polls_at_the_bus_wait_after_its_first_records() -> None:
    outcome = fetch_loop([0.05, 1.004, 2.004], NeverQuiet(), busy_wait_s=0.01, idle_wait_s=0.1)
    assert outcome.found_quiet_pct == pytest.approx(100 / 3)  # only the first: it starts quiet
    assert outcome.wait_mean_ms == pytest.approx((50 + 6 + 6) / 3)
    assert outcome.fetches_per_record == pytest.approx((1 + 191) / 3)


@pytest.mark.parametrize("first", [0.05, 1.75, 2.45])
def test_a_record_after_the_tail_finds_the_worker_quiet_again(first: float) -> None:
    # Busy from the first answer for 25 fetches, 0.25 s exactly (not 26: sums of 0.1 and 0.01
    # may fall a hair short); the fetch sent then waits 100 ms.
    outcome = fetch_loop([first, first + 0.305], FixedTail(0.25), busy_wait_s=0.01, idle_wait_s=0.1)
    assert outcome.found_quiet_pct == 100
    assert outcome.wait_mean_ms == pytest.approx((50 + 95) / 2)


def test_a_long_quiet_stretch_is_stepped_over_with_the_same_outcome() -> None:
    # A record a day: the model jumps over the empty fetches between them, one per idle wait.
    day = 86_400.0
    outcome = fetch_loop([day + 0.05, 2 * day + 0.1], FixedTail(0.25), busy_wait_s=0.01, idle_wait_s=0.1)
    assert outcome.found_quiet_pct == 100
    assert outcome.wait_mean_ms == pytest.approx(50, abs=1e-3)
    # 864,001 fetches to the first; 26 busy ones (25 + the one that finds the tail over) and the
    # idle ones from 0.35 s after it to the second.
    assert outcome.fetches_per_record == pytest.approx((864_001 + 25 + (day - 0.25) / 0.1) / 2, abs=1)
