"""What producing one routed event's outputs costs the router in CPU: its messages sent through
the worker's faust producer, and their acknowledgements awaited, one event per produce request
(as at 20-100 events/s, where the router's producer does not linger), on a local broker.

    .venv/bin/python -m benchmarks.produce [--events N] [--rounds N] [--quick]

The messages are the router's own outputs for the router benchmark's clues (benchmarks/events.py,
through `Router.handle` before timing: ~10 messages to referral, alert, receipt and audit
topics). Three ways of sending them, alternated round by round, each in a worker app's producer
(faust's, the bus's `tuned://` transport, acks=all, the delivery guard watching):
  - `faust`: `await app.producer.send(...)` per message, with aiokafka's own producer, as the
    router sent them until 2026-12-06;
  - `append`: `bus.upstream.lean_produce.send_outputs`, each message appended to its partition's
    batch, one future per batch watched, with aiokafka's own producer;
  - `lean`: the same with the bus's producer (`LeanAIOKafkaProducer`: produce requests written
    and their answers read with `struct`, by a sender loop of the bus's own that writes each
    request to the connection and settles it as the answer is read, without aiokafka's task,
    timeout and waits per request), as the router sends them now.
Each event: send, wait for the last delivery (one produce request settles them all), check
the guard. CPU of
this process (the broker is another) per event, best round; the figure includes aiokafka's
sender (request encoding, the answer's decoding) and the event loop. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from unittest.mock import patch

from aiokafka import AIOKafkaProducer

from benchmarks.events import events
from benchmarks.support import print_result
from bus.faust_app import make_app
from bus.kafka.admin import create_topics
from bus.local_broker import local_broker
from bus.settings import KafkaSettings
from bus.upstream.faust_worker import Producer
from bus.upstream.lean_produce import Output, send_outputs
from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from services.router.app import ROUTER_PRODUCER_LINGER_S
from services.router.handling import Position, Router
from services.router.outputs import emitters
from topics.catalog import all_topics


def outputs(n: int) -> list[Sequence[Output]]:
    """The router's outputs for `n` of the benchmark's events."""
    deadlines = Deadlines.load()
    router = Router(load_rulebook(), deadlines, emitters(deadlines))
    return [tuple(router.handle(raw, Position("events.inbound", 0, i)).messages)
            for i, raw in enumerate(events(n))]


async def faust_sends(app: Any, messages: Sequence[Output]) -> None:
    for topic, key, value in messages:
        await app.producer.send(topic, key, value, None, None, None)


async def lean_sends(app: Any, messages: Sequence[Output]) -> None:
    await send_outputs(app, messages)


Send = Callable[[Any, Sequence[Output]], Awaitable[None]]
#: The ways compared: main's until 2026-12-06; the batch appends alone; appends and lean requests.
WAYS = ("faust", "append", "lean")


async def one_pass(app: Any, send: Send, batches: list[Sequence[Output]]) -> float:
    """CPU seconds per event: each event's outputs sent, then acknowledged, before the next."""
    guard = app.delivery_guard
    start = time.process_time()
    for messages in batches:
        await send(app, messages)
        # One produce request carries them all: its answer settles every one at once.
        latest = guard.latest
        if latest is not None:
            await asyncio.wait((latest,))
        guard.raise_if_failed()
    return (time.process_time() - start) / len(batches)


async def measure(kafka: KafkaSettings, workdir: Path, n: int, rounds: int,
                  only: str | None = None) -> dict[str, Any]:
    await create_topics(kafka, all_topics())
    batches = outputs(n)
    # Two worker apps: one whose aiokafka producer writes and reads produce requests with
    # aiokafka's own schemas (as before 2026-12-06), one with the bus's (`LeanAIOKafkaProducer`).
    apps = {"stock": make_app("bench-produce-stock", kafka, workdir, producer_linger=ROUTER_PRODUCER_LINGER_S),
            "lean": make_app("bench-produce-lean", kafka, workdir, producer_linger=ROUTER_PRODUCER_LINGER_S)}
    with patch.object(Producer, "_producer_type", AIOKafkaProducer):
        await apps["stock"].producer.start()
    await apps["lean"].producer.start()
    try:
        for app in apps.values():
            for topic in sorted({t for messages in batches for t, _, _ in messages}):  # metadata, once
                await app.producer.send_and_wait(topic, b"warm-up", b"{}", None, None, None)
        gc.collect()
        gc.freeze()
        ways: dict[str, tuple[Any, Send]] = {WAYS[0]: (apps["stock"], faust_sends),
                                             WAYS[1]: (apps["stock"], lean_sends),
                                             WAYS[2]: (apps["lean"], lean_sends)}
        if only:  # for a profiler: one way only
            ways = {only: ways[only]}
        seen: dict[str, list[float]] = {name: [] for name in ways}
        for r in range(rounds):
            for name in (list(ways) if r % 2 == 0 else list(ways)[::-1]):
                app, send = ways[name]
                seen[name].append(await one_pass(app, send, batches))
    finally:
        for app in apps.values():
            await app.producer.stop()
    per_event = {name: round(1000 * min(v), 4) for name, v in seen.items()}
    return {"events": n, "rounds": rounds,
            "messages_per_event": round(sum(len(b) for b in batches) / n, 2),
            "cpu_ms_per_event": per_event,
            "cpu_ms_per_event_all_rounds": {k: [round(1000 * x, 4) for x in v] for k, v in seen.items()},
            "vs_faust": {k: round(v / per_event[WAYS[0]], 3) for k, v in per_event.items()} if not only else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=None, help="Events per pass (default 1,000).")
    parser.add_argument("--rounds", type=int, default=None, help="Passes of each way, alternated (default 5).")
    parser.add_argument("--only", choices=WAYS, help="One way only (to profile it).")
    parser.add_argument("--quick", action="store_true", help="20 events, 2 rounds: checks that it runs.")
    args = parser.parse_args()
    n = args.events or (20 if args.quick else 1000)
    rounds = args.rounds or (2 if args.quick else 5)
    with tempfile.TemporaryDirectory() as tmp, local_broker(Path(tmp) / "tansu.log") as broker:
        kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
        result = asyncio.run(measure(kafka, Path(tmp), n, rounds, args.only))
    print(f"CPU per event, {result['messages_per_event']} messages, one event per produce request: "
          + ", ".join(f"{k} {v:.3f} ms" for k, v in result["cpu_ms_per_event"].items())
          + f" (/ faust: {result['vs_faust']})", flush=True)
    print_result({"quick": args.quick, **result})


if __name__ == "__main__":
    main()
