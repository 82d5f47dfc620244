"""Router CPU by load: the % of a core the router worker uses idle, at steady rates (20 and 100
events/s by default) and in bulk, and its CPU per event at each, beside a raw aiokafka worker
doing the same work measured in the same run.

Each worker runs as a process of its own on a fresh local broker of its own, and is measured
through /proc (all its threads):
  (0) fetch: aiokafka fetching only (the records unread), committing every 0.5 s as faust does:
      what the fetch round trips cost before any work, the floor of the other two;
      (`lean-fetch`, not run by default: the same with the bus's lean fetch, the router's floor);
  (a) raw: aiokafka consume -> `Router.handle` -> produce -> wait for the acks -> commit, the
      router's producer settings and fetch wait (REFERRAL_BUS_FETCH_MAX_WAIT_MS), the loop a
      Kafka client's user writes first;
  (b) router: the `referral-bus router` worker (faust, `tuned://` transport), as deployed.
Phases, in order, after the worker has routed a first event: idle (nothing sent); lone (events
sent one at a time, `--lone-gap` apart, each with the worker quiet before it: their CPU net of
the idle rate is what one event costs when it arrives alone); each rate (events sent at a steady
pace, measured from the first send until the worker has committed the last); bulk (events sent
as fast as the producer can, until all are committed). The events are the router benchmark's
clues (benchmarks/events.py). The broker's CPU is printed too: a worker's polling costs the
broker as well. CPU per event at each load is compared with the same worker's bulk figure.
`--profile` records the lone phase and each steady rate with py-spy (without pausing the worker)
and prints the share of its CPU per stage.

    .venv/bin/python -m benchmarks.router_cpu [--rates 20,100] [--window S] [--idle S]
        [--lone N] [--lone-gap S] [--bulk N] [--profile] [--workers fetch,raw,router] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.events import events
from benchmarks.support import context_switches, cpu_seconds, cpu_split, print_result, router_worker, tail_consumer
from bus.kafka import clients
from bus.kafka.admin import create_topics
from bus.local_broker import die_with_parent, local_broker
from bus.settings import KafkaSettings
from bus.upstream import lean_fetch
from services.router.settings import RouterSettings
from topics.catalog import EVENTS, RECEIPTS, all_topics

RAW_GROUP = "bench-raw-worker"
FETCH_GROUP = "bench-fetch-worker"
#: The fetch-only worker commits what it read this often (faust's commit interval, `make_app`).
FETCH_COMMIT_INTERVAL_S = 0.5


@dataclass
class Phase:
    """One measured stretch: wall seconds, events the worker handled, CPU seconds of the worker
    and of the broker."""

    name: str
    wall: float
    events: int
    cpu: float
    broker_cpu: float
    #: For events sent one at a time: the worker's idle CPU share, which their figure is net of
    #: (0.0 is a measurement: a quiet worker can use less than /proc's 10 ms tick in a short window).
    idle_share: float | None = None
    #: Of `cpu`, the seconds spent in the kernel (system calls, the loopback TCP they drive,
    #: wake-ups), and the worker's (voluntary, involuntary) context switches.
    system: float = 0.0
    switches: tuple[int, int] = (0, 0)

    @property
    def pct(self) -> float:
        return 100 * self.cpu / self.wall

    @property
    def broker_pct(self) -> float:
        return 100 * self.broker_cpu / self.wall

    @property
    def ms_per_event(self) -> float | None:
        return 1000 * self.cpu / self.events if self.events else None

    @property
    def ms_per_event_net_of_idle(self) -> float | None:
        if self.idle_share is None or not self.events:
            return None
        return 1000 * (self.cpu - self.idle_share * self.wall) / self.events

    def figures(self) -> dict[str, Any]:
        per = self.ms_per_event
        out = {"cpu_pct": round(self.pct, 2), "broker_cpu_pct": round(self.broker_pct, 2),
               "events": self.events, "seconds": round(self.wall, 1),
               "cpu_ms_per_event": None if per is None else round(per, 3),
               "kernel_cpu_pct": round(100 * self.system / self.wall, 2),
               "voluntary_switches_per_s": round(self.switches[0] / self.wall, 1),
               "involuntary_switches_per_s": round(self.switches[1] / self.wall, 1)}
        net = self.ms_per_event_net_of_idle
        if net is not None:
            out["cpu_ms_per_event_net_of_idle"] = round(net, 3)
        return out


# --------------------------------------------------------------------------------------------
# The raw worker (a process of its own: `python -m benchmarks.router_cpu --raw-worker`)


async def raw_worker(kafka: KafkaSettings) -> None:
    """Consume -> route -> produce -> commit until SIGTERM, with plain aiokafka."""
    from rules.deadlines import Deadlines
    from rules.engine import load_rulebook
    from services.router.handling import Position, Router
    from services.router.outputs import emitters

    deadlines = Deadlines.load()
    router = Router(load_rulebook(), deadlines, emitters(deadlines))
    consumer = clients.consumer(kafka, EVENTS.name, group_id=RAW_GROUP)
    producer = clients.producer(kafka)
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    gc.collect()
    gc.freeze()  # as the bus's workers do (bus.faust_app.run_worker)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=1000)
            futures = []
            for records in batches.values():
                for rec in records:
                    outcome = router.handle(rec.value, Position(rec.topic, rec.partition, rec.offset))
                    for out in outcome.messages:
                        futures.append(await producer.send(out.topic, out.value, key=out.key))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


async def fetch_worker(kafka: KafkaSettings, lean: bool = False) -> None:
    """Only the transport's floor, with plain aiokafka: fetch at the bus's wait, read nothing of the
    records, commit what was fetched every `FETCH_COMMIT_INTERVAL_S` (as faust's commit interval),
    until SIGTERM. What a round trip costs before any routing, hand-over or producing. `lean`: with
    the bus's lean fetch (`bus/upstream/lean_fetch.py`), as the router fetches."""
    consumer = clients.consumer(kafka, EVENTS.name, group_id=FETCH_GROUP)
    await consumer.start()
    if lean:
        lean_fetch.install(consumer)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    gc.collect()
    gc.freeze()
    uncommitted, last_commit = False, time.monotonic()
    try:
        while not stop.is_set():
            uncommitted |= any((await consumer.getmany(timeout_ms=1000)).values())
            if uncommitted and time.monotonic() - last_commit >= FETCH_COMMIT_INTERVAL_S:
                await consumer.commit()
                uncommitted, last_commit = False, time.monotonic()
    finally:
        await consumer.stop()


@contextlib.contextmanager
def raw_process(kafka: KafkaSettings, workdir: Path, kind: str = "raw") -> Iterator[subprocess.Popen[bytes]]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    with open(workdir / f"{kind}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.router_cpu", f"--{kind}-worker"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --------------------------------------------------------------------------------------------
# Load and measurement


class Load:
    """Sends events to the inbound topic and tells when the worker has committed them."""

    def __init__(self, kafka: KafkaSettings, group: str) -> None:
        self.kafka, self.group = kafka, group
        self.sent = 0
        self.payloads = iter(events(10**6 // 5))  # generated lazily enough: a few MB at most used

    async def __aenter__(self) -> Load:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.kafka.bootstrap_servers, acks="all", linger_ms=1)
        self.probe = AIOKafkaConsumer(bootstrap_servers=self.kafka.bootstrap_servers, group_id=self.group,
                                      enable_auto_commit=False)
        await self.producer.start()
        await self.probe.start()
        await self.probe.topics()
        partitions = sorted(self.probe.partitions_for_topic(EVENTS.name) or ())
        self.parts = [TopicPartition(EVENTS.name, p) for p in partitions]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()
        await self.probe.stop()

    async def send(self, n: int, rate: float | None) -> None:
        """`n` events at `rate` per second (None: as fast as the producer goes)."""
        start = time.perf_counter()
        futures = []
        for i in range(n):
            if rate is not None:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            futures.append(await self.producer.send(EVENTS.name, next(self.payloads), key=str(self.sent).encode()))
            self.sent += 1
        await asyncio.gather(*futures)

    async def committed(self) -> int:
        return sum([await self.probe.committed(tp) or 0 for tp in self.parts])

    async def all_committed(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while await self.committed() < self.sent:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker committed {await self.committed()}/{self.sent} events")
            await asyncio.sleep(0.05)


async def wait_until_routing(kafka: KafkaSettings, load: Load, timeout: float = 120) -> None:
    """Send events until a receipt comes back: the worker has joined its group and routes."""
    receipts = await tail_consumer(kafka, RECEIPTS.name)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await load.send(1, None)
            if any((await receipts.getmany(timeout_ms=1000)).values()):
                await load.all_committed()
                return
        raise RuntimeError("the worker routed nothing")
    finally:
        await receipts.stop()


async def phases(kafka: KafkaSettings, group: str, pids: dict[str, int], args: argparse.Namespace) -> list[Phase]:
    worker, broker = pids["worker"], pids["broker"]
    out = []
    async with Load(kafka, group) as load:
        if group == FETCH_GROUP:  # routes nothing: it has joined once it commits a first event
            await load.send(1, None)
            await load.all_committed()
        else:
            await wait_until_routing(kafka, load)
        await asyncio.sleep(args.settle)

        Since = tuple[float, tuple[float, float], tuple[int, int], float]

        def start() -> Since:
            return time.perf_counter(), cpu_split(worker), context_switches(worker), cpu_seconds(broker)

        def done(name: str, since: Since, n: int, idle_share: float | None = None) -> Phase:
            t, (user, system), (voluntary, involuntary), b = since
            user_now, system_now = cpu_split(worker)
            voluntary_now, involuntary_now = context_switches(worker)
            phase = Phase(name, time.perf_counter() - t, n, user_now - user + system_now - system,
                          cpu_seconds(broker) - b, idle_share, system_now - system,
                          (voluntary_now - voluntary, involuntary_now - involuntary))
            f = phase.figures()
            per = "" if f["cpu_ms_per_event"] is None else f", {f['cpu_ms_per_event']:.3f} ms CPU per event"
            if (net := f.get("cpu_ms_per_event_net_of_idle")) is not None:
                per += f" ({net:.3f} net of the idle rate)"
            print(f"  {name:>8}: {f['cpu_pct']:6.2f}% of a core (kernel {f['kernel_cpu_pct']:.2f}){per}; "
                  f"broker {f['broker_cpu_pct']:5.1f}%; {f['events']} events in {f['seconds']} s; context "
                  f"switches {f['voluntary_switches_per_s']:.0f}/s waiting, {f['involuntary_switches_per_s']:.0f}/s "
                  "preempted", flush=True)
            out.append(phase)
            return phase

        spy = py_spy() if args.profile else None
        idle_profile = spy and Profile(spy, worker, args.idle, args.workdir / "idle-profile.txt")
        since = start()
        await asyncio.sleep(args.idle)
        idle = done("idle", since, 0)
        if args.lone:
            lone_s = args.lone * args.lone_gap
            lone_profile = spy and Profile(spy, worker, lone_s, args.workdir / "lone-profile.txt")
            since = start()
            for _ in range(args.lone):
                await load.send(1, None)
                await asyncio.sleep(args.lone_gap)
            await load.all_committed()
            done("lone", since, args.lone, idle_share=idle.cpu / idle.wall)
            if idle_profile and lone_profile:
                print_lone_profile(idle_profile.stages(), args.idle, lone_profile.stages(), lone_s, args.lone,
                                   lone_profile.out)
            await asyncio.sleep(args.settle)
        for rate in args.rates:
            n = max(1, round(rate * args.window))
            rate_profile = spy and Profile(spy, worker, args.window, args.workdir / f"rate-{rate:g}-profile.txt")
            since = start()
            await load.send(n, rate)
            await load.all_committed()
            phase = done(f"{rate:g}/s", since, n)
            if rate_profile:
                print_rate_profile(rate_profile.stages(), phase, rate_profile.out)
            await asyncio.sleep(args.settle)
        since = start()
        await load.send(args.bulk, None)
        await load.all_committed()
        done("bulk", since, args.bulk)
    return out


# --------------------------------------------------------------------------------------------
# Where a lone event's CPU goes (py-spy)

#: Stages of a worker's work, by the code found in a sampled stack (the first that matches: the
#: first mark, and one of the others if there are others). faust's worker and the raw worker
#: alike: the aiokafka stages are told apart by the module the code is in.
STAGES = (
    ("routing step (Router.handle: validate, route, build and serialise every output)", ("Router.handle",)),
    ("agent's sends (faust producer, delivery guard)", ("route_events", "Producer.send")),
    ("agent: batches, metrics", ("route_events", "fetched_batches", "Agent._slurp")),
    ("hand-over: faust's fetch loop, records to the agent", ("_drain_messages", "Fetcher._fetcher", "_deliver")),
    ("commits (faust's commit, producer flush, OffsetCommit)", ("ommit",)),
    ("produce requests (aiokafka sender: encode, send, acks)", ("aiokafka/producer/",)),
    # The worker producer's own sender loop and its answers (bus/upstream/lean_produce.py).
    ("produce requests (aiokafka sender: encode, send, acks)", ("LeanSender.",)),
    ("produce requests (aiokafka sender: encode, send, acks)", ("ProduceAnswer.",)),
    ("fetch requests (aiokafka fetcher: build, send, decode)", ("lean_fetch",)),
    ("fetch requests (aiokafka fetcher: build, send, decode)", ("aiokafka/consumer/",)),
    ("other Kafka requests and responses (heartbeats, metadata, reading sockets)", ("aiokafka/",)),
    ("thread hand-offs (faust's consumer thread <-> the worker's loop)", ("mode/threads.py",)),
)


def stage_counts(path: Path) -> dict[str, int]:
    """Samples per stage in py-spy's raw output at `path` (a thread waiting in the event loop
    is not counted)."""
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines() if path.exists() else ():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        if "select (" in frames[-1]:
            continue
        stage = stage_of(frames)
        counts[stage] = counts.get(stage, 0) + int(samples)
    return counts


class Profile:
    """py-spy recording a worker without pausing it (so that it costs the worker nothing it would
    not spend anyway), only where a thread holds the GIL (Python running, not waiting), for
    `seconds`; `stages()` counts its samples per stage."""

    def __init__(self, spy: str, pid: int, seconds: float, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--rate", "1000", "--nonblocking", "--gil", "--threads",
             "--format", "raw", "--duration", str(max(1, round(seconds))), "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stages(self) -> dict[str, int]:
        self.proc.wait()
        return stage_counts(self.out)


def py_spy() -> str | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if Path(spy).exists():
        return spy
    print("  (no profile: py-spy is not installed; `.venv/bin/pip install py-spy`)")
    return None


def stage_of(frames: list[str]) -> str:
    text = ";".join(frames)
    for stage, marks in STAGES:
        if marks[0] in text and (len(marks) == 1 or any(m in text for m in marks[1:])):
            return stage
    return "event loop, timers, other Python"


def print_lone_profile(idle: dict[str, int], idle_s: float, lone: dict[str, int], lone_s: float,
                       events: int, out: Path) -> None:
    """Per stage: the worker's CPU while idle and while lone events came, and what one lone event
    cost net of the idle rate (1 sample = 1 ms of Python holding the GIL)."""
    print(f"  where a lone event's CPU went (py-spy at 1 kHz, --nonblocking --gil; stacks in {out.parent}):")
    print(f"    {'stage':80} {'idle ms/s':>9} {'lone ms/s':>9} {'ms/event':>8}")
    rows = []
    for stage in {*idle, *lone}:
        per_event = (lone.get(stage, 0) - idle.get(stage, 0) * lone_s / idle_s) / events
        rows.append((per_event, stage))
    for per_event, stage in sorted(rows, reverse=True):
        print(f"    {stage:80} {idle.get(stage, 0) / idle_s:9.2f} {lone.get(stage, 0) / lone_s:9.2f} {per_event:8.2f}")
    total = (sum(lone.values()) - sum(idle.values()) * lone_s / idle_s) / events
    print(f"    {'all':80} {sum(idle.values()) / idle_s:9.2f} {sum(lone.values()) / lone_s:9.2f} {total:8.2f}")


def print_rate_profile(stages: dict[str, int], phase: Phase, out: Path) -> None:
    """Per stage: the worker's Python CPU per event at a steady rate (1 sample = 1 ms holding the
    GIL), gross (idle polling included), beside /proc's figure for the whole phase."""
    seconds = max(1, round(phase.wall))
    events = phase.events * min(1.0, seconds / phase.wall)  # the events of the profiled stretch
    print(f"  where the CPU went at {phase.name} (py-spy at 1 kHz, --nonblocking --gil, the phase's first "
          f"{seconds} s; stacks in {out}):")
    print(f"    {'stage':80} {'ms/s':>7} {'ms/event':>8}")
    for stage, samples in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"    {stage:80} {samples / seconds:7.2f} {samples / events:8.3f}")
    total = sum(stages.values())
    print(f"    {'all (Python)':80} {total / seconds:7.2f} {total / events:8.3f}"
          f"   (/proc: {1000 * phase.cpu / phase.wall:.1f} ms/s, of which the kernel "
          f"{1000 * phase.system / phase.wall:.1f})")
    # --gil counts a sample only while the thread holds the GIL as py-spy, reading the
    # interpreter without pausing it, sees it: not in a system call, and not at every moment
    # Python runs. At 100/s (2026-12-06, q-wake) it counted 126 ms/s where /proc counted 170
    # (159 user, 11 kernel) and py-spy without --gil 163 outside epoll_wait: the shortfall is
    # mostly samples not taken, not time spent in the kernel.
    print("    (py-spy --gil counts less than the Python that ran; the kernel's share is /proc's)")


def run(kind: str, args: argparse.Namespace) -> list[Phase]:
    workdir = args.workdir = args.logdir / kind
    workdir.mkdir(parents=True, exist_ok=True)
    with local_broker(workdir / "tansu.log") as broker:
        assert broker.process is not None
        kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
        asyncio.run(create_topics(kafka, all_topics()))
        worker = (raw_process(kafka, workdir, kind) if kind in ("raw", "fetch", "lean-fetch")
                  else router_worker(kafka, workdir))
        group = {"raw": RAW_GROUP, "fetch": FETCH_GROUP, "lean-fetch": FETCH_GROUP}.get(kind) \
            or RouterSettings().app_name
        with worker as proc:
            print(f"{kind} worker (fetch wait {kafka.fetch_max_wait_ms} ms):", flush=True)
            return asyncio.run(phases(kafka, group, {"worker": proc.pid, "broker": broker.process.pid}, args))


def fetching_alone_vs_routing_in_bulk(floor: dict[str, dict[str, Any]],
                                      router: dict[str, dict[str, Any]]) -> dict[str, float]:
    """At each steady rate (and for a lone event, net of the idle rate), a fetch-only worker's CPU
    per event over the router's per event in bulk: when this is above 1.5, no routing worker
    fetching at that wait can be within 1.5x of its bulk figure there, whatever its work costs."""
    bulk = router["bulk"]["cpu_ms_per_event"]
    if not bulk:
        return {}
    per_event = {name: phase["cpu_ms_per_event"] for name, phase in floor.items() if name.endswith("/s")}
    per_event["lone"] = floor.get("lone", {}).get("cpu_ms_per_event_net_of_idle")
    return {name: round(ms / bulk, 2) for name, ms in per_event.items() if ms is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default=None, help="Steady rates, events/s, comma-separated (default 20,100).")
    parser.add_argument("--window", type=float, default=None, help="Seconds of each steady rate (default 30).")
    parser.add_argument("--idle", type=float, default=None, help="Seconds of the idle window (default 30).")
    parser.add_argument("--bulk", type=int, default=None, help="Events of the bulk phase (default 20,000).")
    parser.add_argument("--settle", type=float, default=None, help="Pause between phases, s (default 3).")
    parser.add_argument("--lone", type=int, default=None,
                        help="Events sent one at a time after the idle window (default 40; 0: none).")
    parser.add_argument("--lone-gap", type=float, default=None, help="Seconds between lone events (default 1.5).")
    parser.add_argument("--profile", action="store_true",
                        help="Record the lone phase and each steady rate with py-spy and print where the CPU went.")
    parser.add_argument("--workers", default="fetch,raw,router",
                        help="Which workers, in order (default fetch,raw,router; `fetch`: an aiokafka consumer "
                             "that only fetches and commits, the transport's floor; `lean-fetch`: the same "
                             "with the bus's lean fetch).")
    parser.add_argument("--logdir", type=Path, default=Path(".state/bench-router-cpu"))
    parser.add_argument("--quick", action="store_true", help="2 s windows, 300 bulk events: checks that it runs.")
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fetch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lean-fetch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_worker:
        asyncio.run(raw_worker(KafkaSettings()))
        return
    if args.fetch_worker or args.lean_fetch_worker:
        asyncio.run(fetch_worker(KafkaSettings(), lean=args.lean_fetch_worker))
        return
    args.rates = [float(r) for r in (args.rates or "20,100").split(",")]
    args.window = args.window or (2.0 if args.quick else 30.0)
    args.idle = args.idle or (2.0 if args.quick else 30.0)
    args.bulk = args.bulk or (300 if args.quick else 20_000)
    args.settle = args.settle if args.settle is not None else (0.5 if args.quick else 3.0)
    args.lone = args.lone if args.lone is not None else (2 if args.quick else 40)
    args.lone_gap = args.lone_gap or (0.5 if args.quick else 1.5)
    results: dict[str, Any] = {"quick": args.quick, "rates": args.rates, "window_s": args.window,
                               "idle_s": args.idle, "bulk_events": args.bulk}
    kinds = args.workers.split(",")
    for kind in kinds:
        measured = run(kind, args)
        bulk = measured[-1].ms_per_event
        results[kind] = {p.name: p.figures() for p in measured}
        results[f"{kind}_vs_bulk"] = {p.name: round(p.ms_per_event / bulk, 2) for p in measured
                                      if p.ms_per_event is not None and bulk}
    print("CPU per event at each rate / the same worker's bulk figure: "
          + ", ".join(f"{kind} {results[f'{kind}_vs_bulk']}" for kind in kinds))
    for floor in ("fetch", "lean-fetch"):
        if {floor, "router"} <= set(kinds):
            results[f"{floor}_vs_router_bulk"] = fetching_alone_vs_routing_in_bulk(results[floor], results["router"])
            print(f"CPU per event of fetching alone ({floor} worker) at each rate / the router's bulk figure "
                  f"(what the round trips alone cost an event, before any work): {results[f'{floor}_vs_router_bulk']}")
    if {"raw", "router"} <= set(kinds):
        print("router / raw, % of a core: " + ", ".join(
            f"{name} {results['router'][name]['cpu_pct'] / max(results['raw'][name]['cpu_pct'], 0.01):.2f}"
            for name in results["router"]))
    print_result(results)


if __name__ == "__main__":
    main()
