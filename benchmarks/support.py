"""What the benchmarks share: the router worker as a subprocess, a consumer at a topic's end,
other processes' CPU time, and the JSON line each benchmark ends with."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bus.local_broker import die_with_parent
from bus.settings import KafkaSettings


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds a process has used so far, all its threads (Linux /proc, in
    clock ticks: 10 ms steps)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def context_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of a process's threads so far (Linux /proc):
    a thread that blocks (waiting for the network, in `epoll_wait`), and one taken off its core
    while it could run (another process woken, often the broker its send just woke)."""
    voluntary = involuntary = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    involuntary += int(line.split()[1])
    return voluntary, involuntary


@contextlib.contextmanager
def router_worker(kafka: KafkaSettings, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The `referral-bus router` worker (a subprocess, `tuned://` transport, the service's own
    settings) on `kafka` while the block runs: its state under `workdir/state`, its output
    appended to `workdir/router.log`, no metrics port. Stopped with SIGTERM when the block ends
    (SIGKILL if it has not exited 20 s later); it dies with this process."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           "REFERRAL_BUS_STATE_DIR": str(workdir / "state"), "REFERRAL_BUS_ROUTER_METRICS_PORT": "0"}
    with open(workdir / "router.log", "ab") as log:
        router = subprocess.Popen([sys.executable, "-m", "services.cli", "router"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
    try:
        yield router
    finally:
        if router.poll() is None:
            os.killpg(router.pid, signal.SIGTERM)
            try:
                router.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(router.pid, signal.SIGKILL)
                router.wait(5)


async def tail_consumer(kafka: KafkaSettings, topic: str) -> AIOKafkaConsumer:
    """A started consumer positioned at the current end of `topic` (no group), fetching with the
    bus's fetch wait."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=None,
                                fetch_max_wait_ms=kafka.fetch_max_wait_ms, enable_auto_commit=False)
    await consumer.start()
    await consumer.topics()
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for p in parts:
        await consumer.position(p)
    return consumer


def print_result(result: Mapping[str, Any]) -> None:
    """The benchmark's last line: its results as one JSON object."""
    print(json.dumps(result, sort_keys=True), flush=True)
