"""`referral-bus demo`: the whole bus on one machine, end to end, in a minute.

Starts the embedded broker (unless KAFKA_BOOTSTRAP_SERVERS names one), creates the topics,
starts the router worker, publishes the scripted events and shows each referral as it reaches
its agency's topic. Exits 0 when every expected referral arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bus.demo_events import INVALID_EVENT, scripted_events
from bus.kafka.admin import create_topics
from bus.kafka.clients import producer
from bus.kafka.reader import follow
from bus.local_broker import LocalBroker, die_with_parent
from bus.settings import KafkaSettings, StateSettings
from rules.deadlines import Deadlines
from rules.engine import load_rulebook, route
from schemas.events import parse_event_obj
from schemas.referrals import Referral
from topics.catalog import DEAD_LETTERS, EVENTS, referral_topic_name

ARRIVAL_TIMEOUT_S = 90.0


@dataclass
class Arrival:
    referral: Referral
    seconds_after_publish: float


def _start_router(kafka: KafkaSettings, state: StateSettings, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           "REFERRAL_BUS_STATE_DIR": str(state.state_dir)}
    env.setdefault("REFERRAL_BUS_ROUTER_METRICS_PORT", "0")
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen([sys.executable, "-m", "services.cli", "router"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=die_with_parent)


def _table(arrivals: list[Arrival], expected: int, dead: int) -> Table:
    table = Table(title=f"Referrals arriving at agency topics ({len(arrivals)}/{expected}), dead letters: {dead}")
    for col in ("after", "agency topic", "role", "urgency", "kind", "jurisdiction", "decided by", "clause"):
        table.add_column(col)
    for a in arrivals:
        r = a.referral
        table.add_row(f"{a.seconds_after_publish:5.2f}s", referral_topic_name(r.agency), r.role, r.urgency,
                      r.kind, r.jurisdiction, r.decided_by, r.citation.clause)
    return table


async def _run(console: Console, kafka: KafkaSettings) -> int:
    await create_topics(kafka)
    events = [parse_event_obj(e) for e in scripted_events()]
    book, deadlines = load_rulebook(), Deadlines.load()
    expected = {r.referral_id: r for e in events for r in route(e, book, deadlines=deadlines)}
    topics = sorted({referral_topic_name(r.agency) for r in expected.values()} | {DEAD_LETTERS.name})
    console.print(f"Publishing {len(events)} events (+1 invalid); expecting {len(expected)} referrals "
                  f"on {len(topics) - 1} agency topics.")

    arrivals: list[Arrival] = []
    seen: set[object] = set()
    dead = 0
    ids = {str(e.event_id) for e in events}
    prod = producer(kafka)
    await prod.start()
    try:
        started = time.monotonic()
        for e in events:
            await prod.send_and_wait(EVENTS.name, e.model_dump_json().encode(), key=str(e.event_id).encode())
        await prod.send_and_wait(EVENTS.name, INVALID_EVENT)
    finally:
        await prod.stop()

    async def collect() -> None:
        nonlocal dead
        with Live(_table(arrivals, len(expected), dead), console=console, refresh_per_second=8) as live:
            async for record in follow(kafka, topics):
                if record.topic == DEAD_LETTERS.name:
                    dead += 1
                else:
                    r = Referral.model_validate_json(record.value or b"")
                    if str(r.event_id) in ids and r.referral_id not in seen:
                        seen.add(r.referral_id)
                        arrivals.append(Arrival(r, time.monotonic() - started))
                live.update(_table(arrivals, len(expected), dead))
                if len(seen) >= len(expected) and dead:
                    return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), ARRIVAL_TIMEOUT_S)

    missing = set(expected) - seen
    by_agency = Counter(r.agency for r in expected.values())
    summary = Table(title="Summary")
    for col in ("agency", "referrals", "lead", "cooperating"):
        summary.add_column(col)
    for agency, n in sorted(by_agency.items()):
        leads = sum(1 for r in expected.values() if r.agency == agency and r.role == "lead")
        summary.add_row(agency, str(n), str(leads), str(n - leads))
    console.print(summary)
    console.print(json.dumps({"events": len(events), "referrals_expected": len(expected),
                              "referrals_received": len(seen), "dead_letters": dead,
                              "seconds": round(time.monotonic() - started, 2)}))
    if missing or not dead:
        console.print(f"[red]incomplete: {len(missing)} referrals missing, dead letters seen: {dead}[/red]")
        return 1
    console.print("[green]every referral reached its agency; the invalid message is in the dead-letter topic[/green]")
    return 0


def run_demo(console: Console, *, keep_broker: bool = False) -> int:
    state = StateSettings()
    state.state_dir.mkdir(parents=True, exist_ok=True)
    kafka = KafkaSettings()
    broker: LocalBroker | None = None
    if not kafka.bootstrap_servers:
        broker = LocalBroker(log_path=state.state_dir / "tansu.log").start()
        kafka = kafka.model_copy(update={"bootstrap_servers": broker.bootstrap})
        console.print(f"Started the embedded broker (Tansu) on {broker.bootstrap}")
    else:
        console.print(f"Using the broker at {kafka.bootstrap_servers}")
    router = _start_router(kafka, state, state.state_dir / "router.log")
    console.print(f"Started the router worker (pid {router.pid}); log: {state.state_dir / 'router.log'}")
    try:
        return asyncio.run(_run(console, kafka))
    finally:
        if keep_broker:
            console.print(f"Left running: broker {kafka.bootstrap_servers}, router pid {router.pid}")
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(router.pid, signal.SIGTERM)
            try:
                router.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(router.pid, signal.SIGKILL)
            if broker is not None:
                broker.stop()
