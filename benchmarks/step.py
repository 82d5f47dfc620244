"""The router's per-message step in process: µs per event through `Router.handle` (decode,
validate, route, build and serialise every output: referrals, the police alert, the receipt and
the audit records), for each kind of event the demo publishes, beside a baseline measured in the
same run: `json.loads` + `json.dumps` of the same bytes. No broker.

    .venv/bin/python -m benchmarks.step [--events N] [--rounds N] [--quick]

Each row routes N different events (new event ids, the rest as the demo's situation), `rounds`
times, and keeps the best pass; the baseline is timed the same way, interleaved with it. As in
the worker (`bus.faust_app.run_worker`), what is built before the first event is frozen out of
the garbage collector.

Then the same step for one event at a time, as a worker meets live traffic: the median µs of a
clue's step right after the previous one (warm), and after the process slept 1 ms, 10 ms (the
bus's fetch wait) and 100 ms (its idle wait) before it. A process that wakes finds its caches
and branch predictors taken by others: on the 2-core VM of docs/benchmarks.md the same step costs
~8× as much after 10 ms asleep as back to back (~11× after 100 ms), which no change to the step
can remove.
Prints a table, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks.support import print_result
from bus.demo_events import scripted_events
from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from services.router.handling import Position, Routed, Router
from services.router.outputs import emitters

HERE = Position("events.inbound", 0, 0)

#: (row name, index in the demo's script, what the issue's goal calls it)
ROWS = (
    ("missing_child_xian", 0, "missing-child report"),
    ("transport_clue_xx_city", 1, "clue"),
    ("medical_clue_yunyang", 2, "clue"),
    ("rescued_victim_shandong", 3, "other"),
    ("abandoned_infant_xian", 4, "other"),
)


def messages_of(index: int, n: int) -> list[bytes]:
    """`n` copies of the demo's situation `index`, each with its own event id, as published."""
    base = scripted_events(run=uuid.UUID(int=index))[index]
    out = []
    for i in range(n):
        event = dict(base, event_id=str(uuid.UUID(int=(index << 64) + i, version=4)))
        out.append(json.dumps(event, ensure_ascii=False).encode())
    return out


def baseline(raws: list[bytes]) -> None:
    for raw in raws:
        json.dumps(json.loads(raw), ensure_ascii=False).encode()


def best_us(fn: Callable[[list[bytes]], Any], raws: list[bytes], times: list[float]) -> None:
    t0 = time.perf_counter()
    fn(raws)
    times.append((time.perf_counter() - t0) / len(raws) * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=None, help="Events per row and pass (default 2,000).")
    parser.add_argument("--rounds", type=int, default=None, help="Passes per row, the best kept (default 7).")
    parser.add_argument("--samples", type=int, default=100,
                        help="Events per sleep of the after-sleep figures (default 100).")
    parser.add_argument("--quick", action="store_true", help="50 events, 1 pass: checks that the benchmark runs.")
    args = parser.parse_args()
    n = args.events or (50 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 7)

    deadlines = Deadlines.load()
    router = Router(load_rulebook(), deadlines, emitters(deadlines))

    def step(raws: list[bytes]) -> None:
        for raw in raws:
            router.handle(raw, HERE)

    rows = [(name, goal, messages_of(index, n)) for name, index, goal in ROWS]
    for _, _, raws in rows:  # warm every path (and check that each situation routes)
        outcome = router.handle(raws[0], HERE)
        assert isinstance(outcome, Routed), outcome
    gc.collect()
    gc.freeze()

    result: dict[str, Any] = {"quick": args.quick, "events": n, "rounds": rounds, "us_per_event": {},
                              "baseline_us_per_event": {}, "ratio": {}, "messages_per_event": {},
                              "referrals_per_event": {}, "goal": {}}
    started = dt.datetime.now().astimezone()
    print(f"{'situation':26} {'goal':22} {'referrals':>9} {'messages':>8} {'µs/event':>9} "
          f"{'baseline µs':>11} {'ratio':>6}")
    for name, goal, raws in rows:
        step_times: list[float] = []
        base_times: list[float] = []
        for _ in range(rounds):
            best_us(step, raws, step_times)
            best_us(baseline, raws, base_times)
        outcome = router.handle(raws[0], HERE)
        assert isinstance(outcome, Routed)
        us, base = min(step_times), min(base_times)
        target = {"missing-child report": "≤ 100 µs", "clue": "≤ 60 µs"}.get(goal, "")
        print(f"{name:26} {goal + (' ' + target if target else ''):22} {len(outcome.written):9d} "
              f"{len(outcome.messages):8d} {us:9.1f} {base:11.1f} {us / base:6.1f}")
        result["us_per_event"][name] = round(us, 1)
        result["baseline_us_per_event"][name] = round(base, 1)
        result["ratio"][name] = round(us / base, 2)
        result["messages_per_event"][name] = len(outcome.messages)
        result["referrals_per_event"][name] = len(outcome.written)
        result["goal"][name] = goal
    print(f"baseline: json.loads + json.dumps of the same bytes; best of {rounds} passes of {n} events; "
          f"started {started:%Y-%m-%d %H:%M %z}")
    result["after_sleep"] = after_sleep(router, 5 if args.quick else args.samples)
    print_result(result)


#: How long the process sleeps before each event of `after_sleep`, ms (0: warm, back to back).
SLEEPS_MS = (0, 1, 10, 100)


def after_sleep(router: Router, samples: int) -> dict[str, Any]:
    """Median µs of one clue's step after the process slept each of `SLEEPS_MS`: for each, a run
    of events each after that sleep (0: back to back), in two passes, the second in reverse order
    (the machine's drift shared out); the ratio of each to the warm figure."""
    index = next(index for name, index, _ in ROWS if name == "transport_clue_xx_city")
    half = max(1, samples // 2)
    raws = iter(messages_of(index, 2 * half * len(SLEEPS_MS) + 1))
    router.handle(next(raws), HERE)
    times: dict[int, list[float]] = {ms: [] for ms in SLEEPS_MS}
    for order in (SLEEPS_MS, SLEEPS_MS[::-1]):
        for ms in order:
            for _ in range(half):
                if ms:  # (sleep(0) would offer the CPU to others: not back to back)
                    time.sleep(ms / 1000)
                raw = next(raws)
                t0 = time.perf_counter()
                router.handle(raw, HERE)
                times[ms].append((time.perf_counter() - t0) * 1e6)
    us = {str(ms): round(statistics.median(t), 1) for ms, t in times.items()}
    ratio = {ms: round(value / us["0"], 2) for ms, value in us.items()}
    print(f"one clue's step after the process slept (median of {2 * half}): "
          + ", ".join(f"{ms} ms: {us[ms]} µs ({ratio[ms]}×)" for ms in us))
    return {"samples": 2 * half, "us": us, "ratio": ratio}


if __name__ == "__main__":
    main()
