"""Integration fixtures: a real Tansu broker process and bus services run as subprocesses."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self, TypeVar

import httpx
import pytest

from bus.kafka.clients import producer
from bus.local_broker import LocalBroker, die_with_parent, free_port
from bus.settings import KafkaSettings
from topics.catalog import EVENTS

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder runs against a real broker: marked `integration`, so that
    `make test-fast` (`-m "not integration ..."`) leaves it out, whether or not its module says
    so. (A `pytestmark` in a conftest marks nothing: pytest reads it from test modules only.)"""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)

CLI = str(Path(sys.executable).with_name("referral-bus"))
T = TypeVar("T")


@pytest.fixture
def kafka(broker: LocalBroker) -> KafkaSettings:
    return KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)


@dataclass
class Service:
    """A bus service (`referral-bus <command>`) running as a child process, killable for real."""

    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    def start(self) -> Self:
        self.starts += 1
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen([CLI, *self.command], env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=die_with_parent)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def service_env(broker: LocalBroker, tmp_path: Path) -> dict[str, str]:
    """Environment for service subprocesses: this test's broker, state dir, no metrics ports."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "REFERRAL_BUS_STATE_DIR": str(tmp_path / "state"),
        "REFERRAL_BUS_ROUTER_METRICS_PORT": "0",
        "REFERRAL_BUS_ALERTS_METRICS_PORT": "0",
        "REFERRAL_BUS_BROADCAST_METRICS_PORT": "0",
        "REFERRAL_BUS_INTAKE_METRICS_PORT": "0",
    }


@pytest.fixture
def spawn(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start `referral-bus <args>` as a subprocess; every one is stopped after the test."""
    started: list[Service] = []

    def _spawn(*args: str, env: dict[str, str] | None = None) -> Service:
        name = args[0].replace("/", "_")
        svc = Service(list(args), {**service_env, **(env or {})}, tmp_path / f"{name}-{len(started)}.log")
        started.append(svc.start())
        return svc

    yield _spawn
    for svc in started:
        svc.stop()


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll until `predicate()` is truthy and return its value; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def healthy(url: str) -> bool:
    """`GET {url}/healthz` answers 200: an HTTP service of the bus is up and ready."""
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start_http_service(spawn: Callable[..., Service], command: str, port_env: str, env: dict[str, str] | None = None,
                       timeout: float = 30) -> tuple[str, Service]:
    """`referral-bus <command>` on a free port (set through `port_env`), once `/healthz` answers: its URL."""
    port = free_port()
    svc = spawn(command, env={port_env: str(port), **(env or {})})
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: healthy(url), timeout, f"{command} on {url}\n{svc.log}")
    return url, svc


def start_intake(spawn: Callable[..., Service], env: dict[str, str] | None = None, timeout: float = 30) -> str:
    """The intake (`referral-bus intake`) on a free port, once ready: its URL."""
    url, _ = start_http_service(spawn, "intake", "REFERRAL_BUS_INTAKE_PORT", env, timeout)
    return url


def publish(kafka: KafkaSettings, payloads: list[bytes], topic: str = EVENTS.name,
            per_second: float | None = None) -> None:
    """Produce raw event payloads (acks=all) as a reporting agency's Kafka client would: all at
    once, or one at a time at a steady rate of `per_second`."""

    async def go() -> None:
        p = producer(kafka)
        await p.start()
        try:
            start = time.monotonic()
            for i, value in enumerate(payloads):
                if per_second:
                    await asyncio.sleep(max(0.0, start + i / per_second - time.monotonic()))
                await p.send(topic, value, key=str(i).encode())
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(go())


assert shutil.which(CLI) or Path(CLI).exists(), f"{CLI} not installed: run make test"


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]  # noqa: SIM115
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]) if len(address) == 8 else f"[{address}]")
    return found
