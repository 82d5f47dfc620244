"""CLI commands against a real broker, and the demo a newcomer runs first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bus.local_broker import LocalBroker

from .conftest import CLI

pytestmark = pytest.mark.integration


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_topics_create_is_idempotent(tmp_path: Path) -> None:
    broker = LocalBroker().start()
    try:
        env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
        first = run("topics", "create", env=env)
        again = run("topics", "create", env=env)
    finally:
        broker.stop()
    assert first.returncode == 0, first.stderr
    assert "already existed" in again.stdout and again.stdout.startswith("created 0 topics")


def test_demo_starts_its_own_broker_and_shows_every_referral(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["REFERRAL_BUS_STATE_DIR"] = str(tmp_path / "state")
    done = subprocess.run([CLI, "demo"], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Started the embedded broker" in done.stdout
    assert "every referral reached its agency" in done.stdout


def test_demo_uses_the_broker_it_is_given(tmp_path: Path) -> None:
    broker = LocalBroker().start()
    try:
        done = run("demo", env={"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                                "REFERRAL_BUS_STATE_DIR": str(tmp_path / "state")})
    finally:
        broker.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"Using the broker at {broker.bootstrap}" in done.stdout
    assert "Started the embedded broker" not in done.stdout


def test_commands_that_need_a_broker_say_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    done = subprocess.run([sys.executable, "-m", "services.cli", "topics", "create"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 2 and "KAFKA_BOOTSTRAP_SERVERS is not set" in done.stderr
