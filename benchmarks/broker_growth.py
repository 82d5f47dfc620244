"""How the local broker (Tansu, memory storage) slows down as a partition fills.

One topic of one partition on a fresh local broker. In steps, the partition is filled with
`--step` more batches of one record each (as reporters publish: one event per send), and then:
  - produce ack: the time a single send waits for acks=all;
  - one hop: a single send until a consumer at the end of the partition has it, with the bus's
    fetch wait (REFERRAL_BUS_FETCH_MAX_WAIT_MS, default 10);
  - idle polling: the broker's CPU while that consumer polls and nothing is sent.
The empty partition is the baseline: the last line printed is one JSON object with each step's
figures and its one-hop p50 as a ratio of the empty partition's.

    .venv/bin/python -m benchmarks.broker_growth [--steps N] [--step N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time

from aiokafka import AIOKafkaProducer

from benchmarks.support import cpu_seconds, print_result, tail_consumer
from bus.kafka.admin import create_topics
from bus.local_broker import local_broker
from bus.settings import KafkaSettings
from topics.catalog import TopicSpec

TOPIC = TopicSpec("bench.growth", "bytes", "event_id", 1, 3_600_000)


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each step measures."""

    steps: int
    step: int  # batches added per step
    samples: int = 30  # single sends timed per step
    settle_s: float = 1.0  # pause after filling, before the idle window
    idle_s: float = 3.0  # the idle window over which the broker's CPU is measured


FULL = Sizes(steps=3, step=4000)
QUICK = Sizes(steps=1, step=200, samples=5, settle_s=0.2, idle_s=0.5)


async def measure(kafka: KafkaSettings, broker_pid: int, sizes: Sizes) -> list[dict[str, float]]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=0)
    await producer.start()
    consumer = await tail_consumer(kafka, TOPIC.name)
    received = 0

    async def consume() -> None:
        nonlocal received
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            received += sum(len(records) for records in batches.values())

    reader = asyncio.create_task(consume())
    stored, results = 0, []
    try:
        for i in range(sizes.steps + 1):
            for _ in range(sizes.step if i else 0):
                await producer.send_and_wait(TOPIC.name, b"x" * 500, partition=0)  # one batch each
                stored += 1
            await asyncio.sleep(sizes.settle_s)
            cpu, started = cpu_seconds(broker_pid), time.monotonic()
            await asyncio.sleep(sizes.idle_s)
            idle = 100 * (cpu_seconds(broker_pid) - cpu) / (time.monotonic() - started)
            acks, hops = [], []
            for _ in range(sizes.samples):
                before, sent = received, time.perf_counter()
                await producer.send_and_wait(TOPIC.name, b"y" * 500, partition=0)
                acks.append(1000 * (time.perf_counter() - sent))
                while received == before:
                    await asyncio.sleep(0.0005)
                hops.append(1000 * (time.perf_counter() - sent))
                stored += 1
            results.append({"batches": stored, "ack_p50_ms": round(statistics.median(acks), 2),
                            "hop_p50_ms": round(statistics.median(hops), 2), "hop_max_ms": round(max(hops), 2),
                            "idle_poll_broker_cpu_pct": round(idle, 1)})
            r = results[-1]
            print(f"{r['batches']:6d} batches: produce ack p50 {r['ack_p50_ms']:5.2f} ms, one hop p50 "
                  f"{r['hop_p50_ms']:6.2f} ms (max {r['hop_max_ms']:7.2f}), broker while polling idle "
                  f"{r['idle_poll_broker_cpu_pct']:4.1f}% of a core", flush=True)
    finally:
        reader.cancel()
        await producer.stop()
        await consumer.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="Filling steps after the empty one (default 3).")
    parser.add_argument("--step", type=int, default=None, help="Batches added per step (default 4,000).")
    parser.add_argument("--quick", action="store_true",
                        help="One step of 200 batches, 5 samples: checks that the benchmark runs.")
    args = parser.parse_args()
    base = QUICK if args.quick else FULL
    sizes = dataclasses.replace(base, steps=base.steps if args.steps is None else args.steps,
                                step=args.step or base.step)
    with local_broker() as broker:
        assert broker.process is not None
        kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
        asyncio.run(create_topics(kafka, (TOPIC,)))
        results = asyncio.run(measure(kafka, broker.process.pid, sizes))
    empty = results[0]["hop_p50_ms"]
    for r in results:
        r["hop_p50_ratio"] = round(r["hop_p50_ms"] / empty, 2)
    print_result({"quick": args.quick, "fetch_max_wait_ms": kafka.fetch_max_wait_ms, "steps": results})


if __name__ == "__main__":
    main()
