"""The commands of this issue on a real broker: publish/outbox, deadletters/replay, acl apply."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bus.local_broker import LocalBroker, free_port
from services.intake.demo import DEMO_TOKENS
from tests.unit.intake.intake_fakes import HOSPITAL, body, hospital_event

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("referral-bus"))


def cli(*args: str, env: dict[str, str], stdin: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env={**os.environ, **env}, input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def test_publish_queues_while_the_intake_is_down_then_outbox_drains(
        broker: LocalBroker, spawn: Callable[..., Any], tmp_path: Path) -> None:
    port = free_port()
    env = {"REFERRAL_BUS_TOKEN": DEMO_TOKENS[HOSPITAL], "REFERRAL_BUS_INTAKE_URL": f"http://127.0.0.1:{port}",
           "REFERRAL_BUS_STATE_DIR": str(tmp_path / "reporter")}
    events = [hospital_event() for _ in range(3)]
    lines = "\n".join(body(e).decode() for e in events) + "\n"
    down = cli("publish", "-", "--timeout", "2", env=env, stdin=lines)
    assert down.returncode == 3, down.stdout + down.stderr  # kept, not lost
    assert "3 event(s) still pending" in down.stderr
    shown = cli("outbox", env=env)
    assert shown.returncode == 0 and "pending 3" in shown.stdout
    listed = [json.loads(line) for line in cli("outbox", "--json", env=env).stdout.splitlines()]
    assert [i["event_id"] for i in listed] == [e["event_id"] for e in events]
    assert {i["status"] for i in listed} == {"pending"} and all(i["last_error"] for i in listed[:1])

    spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(port)})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    drained = cli("outbox", "--drain", "--timeout", "60", env=env)
    assert drained.returncode == 0, drained.stdout + drained.stderr
    assert "sent 3, rejected 0, pending 0" in drained.stdout

    again = cli("publish", "-", env=env, stdin=body(events[0]).decode())  # same event: already in the outbox
    assert again.returncode == 0 and "already in the outbox" in again.stdout


def test_deadletters_list_and_replay_fixed_event(broker: LocalBroker, spawn: Callable[..., Any],
                                                  tmp_path: Path) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    spawn("router")
    bad = hospital_event(jurisdiction="atlantis")
    sent = cli("replay", "-", env=env, stdin=body(bad).decode())
    assert sent.returncode == 2 and "jurisdiction" in sent.stderr  # replay validates first

    # Publish the invalid event straight to Kafka, as a non-intake client might.
    import asyncio

    from bus.kafka.clients import producer
    from bus.settings import KafkaSettings
    from topics.catalog import EVENTS

    async def raw() -> None:
        p = producer(KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap))
        await p.start()
        try:
            await p.send_and_wait(EVENTS.name, body(bad), key=b"k")
        finally:
            await p.stop()

    asyncio.run(raw())
    deadline = time.monotonic() + 60
    letters: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not letters:
        out = cli("deadletters", "--json", "--export", str(tmp_path / "dl"), env=env)
        letters = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert [d["event_id"] for d in letters] == [bad["event_id"]]
    assert "original_b64" not in letters[0] and "刘招娣" not in json.dumps(letters, ensure_ascii=False)
    [exported] = list((tmp_path / "dl").iterdir())
    fixed = {**json.loads(exported.read_bytes()), "jurisdiction": "yunyang"}
    done = cli("replay", "-", env=env, stdin=json.dumps(fixed, ensure_ascii=False))
    assert done.returncode == 0 and "replayed 1" in done.stdout


def test_acl_apply_says_the_local_broker_has_no_acls(broker: LocalBroker) -> None:
    done = cli("acl", "apply", env={"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "ACL" in done.stderr
