"""Router throughput: the faust router service against raw aiokafka doing the same work.

They run in one go, each pass on a fresh local broker of its own, over the same events:
  (a) raw: aiokafka consume -> parse/validate -> route -> produce, in one process; run before
      and after each pass of (b), and all taken together, so that the machine's drift and its
      neighbours' bursts weigh on both sides alike;
  (b) router: the `referral-bus router` worker (a subprocess), timed by the offsets it commits
      (faust commits only after the producer has flushed what it sent): from its first commit to
      the commit of the last event, so the consumer-group join is not counted. Its referrals are
      counted afterwards, untimed: a consumer reading them while the router runs would take CPU
      from it (two cores here) that the raw pass does not pay.
Each pass also reports the CPU time its process and the broker used per event: on a shared,
noisy machine the throughput of both passes moves with the neighbours, the work per event less.
The last line printed is one JSON object: raw_msgs_per_s and router_msgs_per_s (all passes of
each together), ratio (router/raw), each pass's rate, and the CPU milliseconds per event.

    .venv/bin/python -m benchmarks.router [--events N] [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.events import events
from benchmarks.support import cpu_seconds, print_result, router_worker
from bus.kafka import clients
from bus.kafka.admin import create_topics
from bus.local_broker import LocalBroker, local_broker
from bus.settings import KafkaSettings
from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from services.router.handling import Position, Routed, Router
from services.router.outputs import emitters
from services.router.settings import RouterSettings
from topics.catalog import EVENTS, TopicSpec, all_topics


async def fill(kafka: KafkaSettings, topic: str, payloads: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=5,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, p, key=str(i).encode()) for i, p in enumerate(payloads)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def count_output(kafka: KafkaSettings, topics: list[str], expected: int) -> int:
    """Read `topics` from the start until `expected` referrals have arrived (or the reading goes quiet).

    Counted by reading, not by end offsets, which the local broker under-reports.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False,
                                fetch_max_wait_ms=kafka.fetch_max_wait_ms)
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen = 0
        quiet_since = time.monotonic()
        while seen < expected and time.monotonic() - quiet_since < 30:
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            got = sum(len(r) for r in batches.values())
            if got:
                seen += got
                quiet_since = time.monotonic()
        return seen
    finally:
        await consumer.stop()


@dataclass
class Span:
    """A timed stretch of a pass: wall seconds, events covered, CPU seconds of the pass's process
    and of the broker."""

    wall: float
    events: int
    cpu: float
    broker_cpu: float

    @property
    def rate(self) -> float:
        return self.events / self.wall

    @property
    def cpu_ms_per_event(self) -> float:
        return 1000 * self.cpu / self.events

    def __add__(self, other: Span) -> Span:
        return Span(self.wall + other.wall, self.events + other.events, self.cpu + other.cpu,
                    self.broker_cpu + other.broker_cpu)

    def figures(self) -> str:
        return (f"{self.rate:,.0f} msg/s; CPU per event: {self.cpu_ms_per_event:.2f} ms"
                f" ({100 * self.cpu / self.wall:.0f}% of a core), broker {1000 * self.broker_cpu / self.events:.2f} ms"
                f" ({100 * self.broker_cpu / self.wall:.0f}%)")


async def wait_for_commits(kafka: KafkaSettings, group: str, topic: str, n: int, pids: tuple[int, int]) -> Span:
    """Poll `group`'s committed offsets on `topic` until all `n` events are committed, timing from
    the first commit seen (the events it covers are not counted) to the last; `pids` are the
    router's and the broker's processes, whose CPU time over that span is measured."""
    probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=group,
                             enable_auto_commit=False)
    await probe.start()
    try:
        await probe.topics()
        parts = [TopicPartition(topic, p) for p in sorted(probe.partitions_for_topic(topic) or ())]
        first = 0.0
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = sum([await probe.committed(tp) or 0 for tp in parts])
            now = time.perf_counter()
            if done and not first:
                first, first_done, first_cpu = now, done, [cpu_seconds(p) for p in pids]
            if done >= n:
                if first_done >= n:
                    raise RuntimeError(f"the router's first commit covered all {n} events: nothing left to "
                                       "time (give it more --events)")
                # The first commit already covers `first_done` events: time the rest.
                cpu, broker_cpu = (cpu_seconds(p) - c for p, c in zip(pids, first_cpu, strict=True))
                return Span(now - first, n - first_done, cpu, broker_cpu)
            await asyncio.sleep(0.05)
        raise RuntimeError(f"router committed {done}/{n} events")
    finally:
        await probe.stop()


async def raw_pass(kafka: KafkaSettings, topic: str, n: int, router: Router, broker_pid: int) -> Span:
    """Consume -> route -> produce with plain aiokafka, timed from its first fetched batch."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers, group_id="bench-raw",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=kafka.fetch_max_wait_ms, max_poll_records=2000)
    # The router's producer settings (linger, batch size, partitioner): both paths do the same work.
    producer = clients.producer(kafka)
    await consumer.start()
    await producer.start()
    done = 0
    started = 0.0
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            if batches and not started:
                started, cpu, broker_cpu = time.perf_counter(), time.process_time(), cpu_seconds(broker_pid)
            futures = []
            for records in batches.values():
                for rec in records:
                    outcome = router.handle(rec.value, Position(rec.topic, rec.partition, rec.offset))
                    for out in outcome.messages:
                        futures.append(await producer.send(raw_topic(out.topic), out.value, key=out.key))
                    done += 1
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
        return Span(time.perf_counter() - started, n, time.process_time() - cpu,
                    cpu_seconds(broker_pid) - broker_cpu)
    finally:
        await consumer.stop()
        await producer.stop()


def raw_topic(name: str) -> str:
    return f"bench.raw.{name}"


def router_pass(kafka: KafkaSettings, n: int, expected_out: int, out_topics: list[str], workdir: Path,
                broker_pid: int) -> Span:
    with router_worker(kafka, workdir) as router:
        span = asyncio.run(
            wait_for_commits(kafka, RouterSettings().app_name, EVENTS.name, n, (router.pid, broker_pid)))
        produced = asyncio.run(count_output(kafka, out_topics, expected_out))
        if produced < expected_out:
            raise RuntimeError(f"router produced {produced}/{expected_out} referrals")
        return span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=None, help="Events per pass (default 100k).")
    parser.add_argument("--rounds", type=int, default=None,
                        help="Router passes, each between two raw passes (default 2: five passes).")
    parser.add_argument("--logdir", type=Path, default=Path(".state/bench-router"))
    parser.add_argument("--quick", action="store_true",
                        help="10,000 events, one round (raw, router, raw): checks that the benchmark runs. "
                             "(Fewer can all be routed before the router's first commit, 0.5 s in: "
                             "then there is nothing to time.)")
    args = parser.parse_args()
    args.events = args.events or (10_000 if args.quick else 100_000)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.logdir.mkdir(parents=True, exist_ok=True)
    payloads = events(args.events)
    book, deadlines = load_rulebook(), Deadlines.load()
    # The same emitters the router service runs (alerts, receipts), so both do the same work.
    router = Router(book, deadlines, emitters(deadlines))
    expected_out = 0
    for p in payloads:
        outcome = router.handle(p, Position("x", 0, 0))
        expected_out += len(outcome.written) if isinstance(outcome, Routed) else 0
    # Each pass on a broker of its own, started empty: the local broker's memory storage slows
    # down as it fills, and a pass run second on a shared one paid for the first one's data.
    # Raw and router passes alternate, raw first and last (raw, router, raw, ...), and the
    # router is compared with all raw passes together: the machine's speed drifts over minutes,
    # and its neighbours take CPU in bursts of seconds; alternating cancels a steady drift, and
    # more rounds average the bursts out.
    raws = [run_raw(args, "raw-0", payloads, router)]
    print(f"raw aiokafka consume->route->produce: {raws[-1].figures()}")
    routeds: list[Span] = []
    for round_ in range(1, args.rounds + 1):
        routeds.append(run_router(args, f"router-{round_}", payloads, expected_out))
        print(f"router service (faust):               {routeds[-1].figures()}")
        raws.append(run_raw(args, f"raw-{round_}", payloads, router))
        print(f"raw aiokafka consume->route->produce: {raws[-1].figures()}")
    raw, routed = sum(raws[1:], raws[0]), sum(routeds[1:], routeds[0])
    print_result({"quick": args.quick, "raw_msgs_per_s": round(raw.rate), "router_msgs_per_s": round(routed.rate),
                  "ratio": round(routed.rate / raw.rate, 3), "events": args.events, "rounds": args.rounds,
                  "raw_passes_msgs_per_s": [round(r.rate) for r in raws],
                  "router_passes_msgs_per_s": [round(r.rate) for r in routeds],
                  "raw_cpu_ms_per_event": round(raw.cpu_ms_per_event, 3),
                  "router_cpu_ms_per_event": round(routed.cpu_ms_per_event, 3)})


def run_router(args: argparse.Namespace, name: str, payloads: list[bytes], expected_out: int) -> Span:
    """The router pass on a fresh broker of its own, over `payloads`."""
    with _broker(args, name) as broker:
        kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
        asyncio.run(create_topics(kafka, all_topics()))
        asyncio.run(fill(kafka, EVENTS.name, payloads))
        assert broker.process is not None
        out_topics = [t.name for t in all_topics() if t.name.startswith("referrals.")]
        return router_pass(kafka, len(payloads), expected_out, out_topics, args.logdir / name, broker.process.pid)


def run_raw(args: argparse.Namespace, name: str, payloads: list[bytes], router: Router) -> Span:
    """The raw pass on a fresh broker of its own, over `payloads`."""
    raw_in = TopicSpec("bench.raw.in", "Event", "event_id", EVENTS.partitions, 3_600_000)
    # A copy of each topic the router writes to: both passes spread their output over the same
    # number of topics and partitions.
    raw_out = [replace(t, name=raw_topic(t.name)) for t in all_topics()]
    with _broker(args, name) as broker:
        kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
        asyncio.run(create_topics(kafka, (raw_in, *raw_out)))
        asyncio.run(fill(kafka, raw_in.name, payloads))
        assert broker.process is not None
        return asyncio.run(raw_pass(kafka, raw_in.name, len(payloads), router, broker.process.pid))


def _broker(args: argparse.Namespace, name: str) -> contextlib.AbstractContextManager[LocalBroker]:
    """A fresh local broker for the pass `name`, logging beside the pass's other output."""
    return local_broker(args.logdir / f"tansu-{name}.log")


if __name__ == "__main__":
    main()
