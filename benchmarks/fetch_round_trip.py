"""What an empty fetch round trip costs the consumer: aiokafka's fetcher against the bus's lean one.

One process, one local broker, one quiet topic (the events topic's 4 partitions), consumers
assigned all of it at the bus's fetch wait, each polling (`getmany`, 1 s timeout) for a window
while nothing is produced; the variants alternate, a fresh consumer each window:
  aiokafka: aiokafka's own fetch routine;
  lean: `bus.upstream.lean_fetch` installed (the steady state's short path, its request encoded
        once, the last empty answer's decoding reused).
CPU is this process's (user + system, all threads), per round trip (the fetch connection's
correlation ids) and as % of a core; the broker's CPU beside it.
Then, without the broker: µs to decode a Fetch answer that carries one event (the router
benchmark's clue, a v2 record batch) on one of the 4 partitions, as the lean fetch reads it with
`struct` (`bus/upstream/fetch_answers.py`) and as aiokafka's schema walk does, alternating, for
the answer version the broker's connection negotiated (best of 5 rounds).

    .venv/bin/python -m benchmarks.fetch_round_trip [--window S] [--rounds N] [--wait MS] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from benchmarks.events import events
from benchmarks.support import cpu_seconds, print_result
from bus.kafka.admin import create_topics
from bus.local_broker import local_broker
from bus.settings import KafkaSettings
from bus.upstream import lean_fetch
from bus.upstream.fetch_answers import decode_fetch_answer
from topics.catalog import EVENTS

VARIANTS = ("aiokafka", "lean")


async def window(kafka: KafkaSettings, variant: str, seconds: float, broker_pid: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=None,
                                fetch_max_wait_ms=kafka.fetch_max_wait_ms, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        consumer.assign([TopicPartition(EVENTS.name, p) for p in range(EVENTS.partitions)])
        lean = lean_fetch.install(consumer) if variant == "lean" else None
        deadline = time.monotonic() + 1.0  # settle: positions reset, connection up
        while time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=200)
        trips0, cpu0 = lean_fetch.requests_sent(consumer), time.process_time()
        broker0, wall0 = cpu_seconds(broker_pid), time.monotonic()
        deadline = wall0 + seconds
        while time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=1000)
        wall = time.monotonic() - wall0
        trips = lean_fetch.requests_sent(consumer) - trips0
        cpu = time.process_time() - cpu0
        if lean is not None:  # the short path was the one taken
            assert lean.lean_round_trips >= trips // 2 and lean.reused >= trips // 2, vars(lean)
            assert lean.answer_type is not None
            ANSWER_TYPES.add(lean.answer_type)
        return {"round_trips": trips, "cpu_ms_per_round_trip": 1000 * cpu / max(trips, 1),
                "cpu_pct": 100 * cpu / wall, "broker_cpu_pct": 100 * (cpu_seconds(broker_pid) - broker0) / wall,
                "round_trips_per_s": trips / wall}
    finally:
        await consumer.stop()


#: The Fetch answer types the lean fetch's connections negotiated (`window`).
ANSWER_TYPES: set[Any] = set()


def answer_with_an_event(answer_type: Any) -> bytes:
    """A Fetch answer of `answer_type`: one clue in a v2 record batch on partition 0 of the events
    topic, partitions 1-3 empty."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    builder.append(0, timestamp=1_765_000_000_000, key=None, value=events(1)[0], headers=[])
    records = bytes(builder.build())
    version = answer_type.API_VERSION

    def partition(p: int, hw: int, data: bytes) -> tuple[Any, ...]:
        head = (p, 0, hw, hw) + ((0,) if version >= 5 else ())
        return (*head, [], *((-1,) if version >= 11 else ()), data)

    topics = [(EVENTS.name, [partition(0, 1, records), *(partition(p, 5, b"") for p in range(1, 4))])]
    fields = (0, topics) if version < 7 else (0, 0, 0, topics)
    body: bytes = answer_type(*fields).encode()
    return body


def decoding(answer_type: Any, n: int, rounds: int = 5) -> dict[str, Any]:
    """µs per decoding of `answer_with_an_event`, aiokafka's and `struct`'s, best of `rounds`."""
    body = answer_with_an_event(answer_type)
    assert decode_fetch_answer(answer_type, body) == answer_type.decode(io.BytesIO(body))
    ways: dict[str, Callable[[], Any]] = {"aiokafka": lambda: answer_type.decode(io.BytesIO(body)),
            "struct": lambda: decode_fetch_answer(answer_type, body)}
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(rounds):
        for way, decode in ways.items():
            t0 = time.process_time()
            for _ in range(n):
                decode()
            best[way] = min(best[way], 1e6 * (time.process_time() - t0) / n)
    return {"answer_version": answer_type.API_VERSION, "aiokafka_us": round(best["aiokafka"], 2),
            "struct_us": round(best["struct"], 2), "ratio": round(best["struct"] / best["aiokafka"], 3)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with local_broker() as broker:
        assert broker.process is not None
        kafka = KafkaSettings.model_validate({"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                                              "fetch_max_wait_ms": args.wait})
        await create_topics(kafka, (EVENTS,))
        results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        variants = tuple(args.variants.split(","))
        results = {v: [] for v in variants}
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for variant in order:
                figures = await window(kafka, variant, args.window, broker.process.pid)
                results[variant].append(figures)
                print(f"round {r + 1} {variant:9s} {figures['round_trips']:6.0f} round trips "
                      f"({figures['round_trips_per_s']:.0f}/s): {figures['cpu_ms_per_round_trip']:.3f} ms CPU each, "
                      f"{figures['cpu_pct']:.2f} % of a core; broker {figures['broker_cpu_pct']:.2f} %", flush=True)
    summary: dict[str, Any] = {"quick": args.quick, "fetch_max_wait_ms": args.wait, "window_s": args.window,
                               "rounds": args.rounds}
    for variant, runs in results.items():
        per = [f["cpu_ms_per_round_trip"] for f in runs]
        summary[variant] = {"cpu_ms_per_round_trip": [round(x, 4) for x in per],
                            "cpu_pct": [round(f["cpu_pct"], 2) for f in runs],
                            "broker_cpu_pct": [round(f["broker_cpu_pct"], 2) for f in runs],
                            "median_cpu_ms_per_round_trip": round(statistics.median(per), 4)}
    for answer_type in sorted(ANSWER_TYPES, key=lambda t: t.API_VERSION):
        summary["decode_with_records"] = figures = decoding(answer_type, 200 if args.quick else 20_000)
        print(f"decoding an answer with one event (v{figures['answer_version']}): aiokafka "
              f"{figures['aiokafka_us']:.2f} µs, struct {figures['struct_us']:.2f} µs ({figures['ratio']:.2f}x)")
    if set(results) != set(VARIANTS):
        return summary
    summary["ratio"] = round(summary["lean"]["median_cpu_ms_per_round_trip"]
                             / summary["aiokafka"]["median_cpu_ms_per_round_trip"], 3)
    print(f"median CPU per empty round trip: aiokafka {summary['aiokafka']['median_cpu_ms_per_round_trip']:.3f} ms, "
          f"lean {summary['lean']['median_cpu_ms_per_round_trip']:.3f} ms ({summary['ratio']:.2f}x)")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=10.0, help="Seconds of each window (default 10).")
    parser.add_argument("--rounds", type=int, default=3, help="Alternations of the variants (default 3).")
    parser.add_argument("--wait", type=int, default=10, help="fetch_max_wait_ms (default 10, the bus's).")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="Which, in order (default aiokafka,lean).")
    parser.add_argument("--quick", action="store_true", help="1 s windows, one round: checks that it runs.")
    args = parser.parse_args()
    if args.quick:
        args.window, args.rounds = 1.0, 1
    print_result(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
