"""What the worker's fetch waits cost and save, in a model of its fetch loop under Poisson arrivals.

No broker and no clock: the worker's own `BusyTail` decides, on model time, how long the worker
keeps polling at the bus's wait after records before it goes quiet (the app's idle wait), as the
transport's consumer does (`bus/kafka/faust_transport.py`: `_on_records`, `_fetch_timeout`,
`_on_quiet`). A fetch sent at t with wait w is answered at t + w with every record that arrived by
then (Tansu answers a waiting fetch only when its wait ends, ../shared/BROKER.md); the next fetch
goes out at once. Per arrival rate and policy it prints the fetch round trips per second and per
record (each empty one costs the worker ~0.2 ms of CPU and the broker as much), the share of
records that found the worker quiet, and how long records wait at the hop (mean, p99).

Policies, the first two the baselines of the same run:
  always_busy: never quiet, the bus's wait all the time (the latency floor, the most polls);
  fixed_tail:  quiet `QUIET_AFTER_S` after the last records, whatever the pace (main until q-tail);
  no_lone_tail: the bus's, but a record that ends a quiet spell keeps no tail (`LONE_QUIET_AFTER_S` 0);
  bus:         the bus's (`BusyTail` as configured).

    .venv/bin/python -m benchmarks.fetch_waits [--records N] [--seed N] [--quick]
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from benchmarks.support import print_result
from bus.kafka.faust_transport import LONE_QUIET_AFTER_S, QUIET_AFTER_S, BusyTail
from bus.settings import KafkaSettings

#: Model times are sums and products of floats: a tail of 0.25 s ends at the 25th fetch 10 ms
#: apart, not the 26th because 25 additions (or 0.01 * 25) fell a hair short.
_EPSILON_S = 1e-9

#: Records per second: a county's few a minute, a city's, a province's, the alert goal's 20, 100.
RATES = (1 / 60, 0.1, 1.0, 2.0, 5.0, 10.0, 20.0, 100.0)


class Tail(Protocol):
    """How long a worker keeps its short fetch wait after records: told of each fetch that brought
    records (`records`), it says for how long after the last of them (`seconds`)."""

    def records(self, at: float, *, after_quiet: bool) -> None: ...
    def seconds(self) -> float: ...


class FixedTail:
    """The same tail after any records."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def records(self, at: float, *, after_quiet: bool) -> None:
        pass

    def seconds(self) -> float:
        return self._seconds


class NeverQuiet(FixedTail):
    def __init__(self) -> None:
        super().__init__(float("inf"))


POLICIES: dict[str, Callable[[], Tail]] = {
    "always_busy": NeverQuiet,
    "fixed_tail": lambda: FixedTail(QUIET_AFTER_S),
    "no_lone_tail": lambda: BusyTail(lone_tail_s=0.0),
    "bus": BusyTail,
}


@dataclass(frozen=True)
class Outcome:
    fetches_per_s: float
    fetches_per_record: float
    found_quiet_pct: float
    wait_mean_ms: float
    wait_p99_ms: float


def arrivals(rate: float, records: int, seed: int) -> list[float]:
    """Times of `records` independent arrivals at `rate` per second."""
    rnd, at, times = random.Random(seed), 0.0, []
    for _ in range(records):
        at += rnd.expovariate(rate)
        times.append(at)
    return times


def fetch_loop(times: list[float], tail: Tail, busy_wait_s: float, idle_wait_s: float) -> Outcome:
    """The worker fetching `times`' records, busy at `busy_wait_s`, quiet at `idle_wait_s` after
    `tail.seconds()` without records; it starts quiet, as a worker whose topics were."""
    quiet, sent_at, last_records_at, fetches, found_quiet, next_record = True, 0.0, 0.0, 0, 0, 0
    waits: list[float] = []
    while next_record < len(times):
        wait = idle_wait_s if quiet else busy_wait_s
        # The empty fetches well before the next record, or before the busy tail ends, in one
        # step (a record a minute would cost the model ~100 turns a second of its time otherwise).
        empty = int((times[next_record] - sent_at) / wait) - 1
        if not quiet and math.isfinite(tail_s := tail.seconds()):
            empty = min(empty, int((last_records_at + tail_s - _EPSILON_S - sent_at) / wait) - 1)
        if empty > 0:
            fetches += empty
            sent_at += empty * wait
        answered_at = sent_at + wait
        fetches += 1
        first = next_record
        while next_record < len(times) and times[next_record] <= answered_at:
            next_record += 1
        if next_record > first:
            if quiet:
                found_quiet += next_record - first
            waits.extend(answered_at - at for at in times[first:next_record])
            tail.records(answered_at, after_quiet=quiet)
            quiet, last_records_at = False, answered_at
        elif not quiet and answered_at - last_records_at >= tail.seconds() - _EPSILON_S:
            quiet = True
        sent_at = answered_at
    waits.sort()
    return Outcome(fetches_per_s=fetches / times[-1], fetches_per_record=fetches / len(times),
                   found_quiet_pct=100 * found_quiet / len(times),
                   wait_mean_ms=1000 * sum(waits) / len(waits), wait_p99_ms=1000 * waits[int(0.99 * len(waits))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="arrivals per rate and policy")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a few hundred records per rate, as the suite runs it")
    args = parser.parse_args()
    records = 300 if args.quick else args.records
    kafka = KafkaSettings()
    busy_wait_s = kafka.fetch_max_wait_ms / 1000
    idle_wait_s = max(kafka.fetch_max_wait_ms, kafka.idle_fetch_max_wait_ms) / 1000  # as `_set_fetch_wait`
    print(f"fetch waits: busy {busy_wait_s * 1000:.0f} ms, quiet {idle_wait_s * 1000:.0f} ms; lone tail "
          f"{LONE_QUIET_AFTER_S * 1000:.0f} ms; {records:,} Poisson arrivals per rate, seed {args.seed}")
    print(f"{'records/s':>9} {'policy':>12} {'fetches/s':>9} {'per record':>10} {'quiet %':>7} "
          f"{'mean ms':>7} {'p99 ms':>6}")
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for rate in RATES:
        times = arrivals(rate, records, args.seed)
        by_policy = figures[f"{rate:g}"] = {}
        for name, policy in POLICIES.items():
            outcome = fetch_loop(times, policy(), busy_wait_s, idle_wait_s)
            by_policy[name] = {key: round(value, 3) for key, value in vars(outcome).items()}
            print(f"{rate:9.3g} {name:>12} {outcome.fetches_per_s:9.1f} {outcome.fetches_per_record:10.2f} "
                  f"{outcome.found_quiet_pct:7.2f} {outcome.wait_mean_ms:7.1f} {outcome.wait_p99_ms:6.1f}")
    print_result({"quick": args.quick, "records": records, "seed": args.seed, "busy_wait_ms": busy_wait_s * 1000,
                  "idle_wait_ms": idle_wait_s * 1000, "rates": figures})


if __name__ == "__main__":
    main()
