"""The intake on a real broker with the router: publish as a hospital, read as the police.

Also: the outbox holds through a broker outage (SIGSTOP) and then delivers everything once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bus.client import IntakeClient
from bus.kafka.reader import read_all
from bus.local_broker import LocalBroker
from bus.outbox import Outbox
from bus.settings import KafkaSettings
from schemas.receipts import AuditRecord, Receipt
from schemas.referrals import Referral
from services.intake.demo import DEMO_TOKENS
from tests.unit.intake.intake_fakes import body, hospital_event
from topics.catalog import AUDIT, EVENTS, RECEIPTS

from ..conftest import start_intake, wait_for

pytestmark = pytest.mark.integration

HOSPITAL = "health.designated_medical_institution"
CLI = str(Path(sys.executable).with_name("referral-bus"))


until = wait_for


@pytest.fixture
def intake_url(spawn: Callable[..., Any]) -> Iterator[str]:
    yield start_intake(spawn, {"REFERRAL_BUS_INTAKE_PUBLISH_TIMEOUT_S": "3", "REFERRAL_BUS_INTAKE_RETRY_AFTER_S": "1"})


def sse_referrals(url: str, agency: str, *, idle_exit: float = 4, max_items: int = 50) -> list[Referral]:
    out: list[Referral] = []
    headers = {"Authorization": f"Bearer {DEMO_TOKENS[agency]}"}
    with httpx.stream("GET", f"{url}/v1/referrals/stream", params={"idle_exit": idle_exit, "max": max_items},
                      headers=headers, timeout=60) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "referral":
                out.append(Referral.model_validate_json(line[6:]))
    return out


def test_hospital_publishes_police_receive_other_agency_refused(kafka: KafkaSettings, spawn: Callable[..., Any],
                                                                intake_url: str, tmp_path: Path) -> None:
    router = spawn("router")
    # XX市: health supervises the mandatory report (第三十一条), the police handle it (第四十条).
    # (云阳's 2013-2020 plan has ended: a 2025 report there routes by the plan in force, police only.)
    event = hospital_event(jurisdiction="xx_city", location={"place": "XX市人民医院"})
    box = Outbox(tmp_path / "outbox.sqlite")
    client = IntakeClient(intake_url, DEMO_TOKENS[HOSPITAL], box)
    client.publish(body(event))
    assert client.drain(deadline_s=30).sent == 1
    [item] = box.items("sent")
    assert json.loads(item.answer or "{}")["event_id"] == event["event_id"]

    # Nobody can publish as someone else.
    other = httpx.post(f"{intake_url}/v1/events", content=body(hospital_event()),
                       headers={"Authorization": f"Bearer {DEMO_TOKENS['education']}",
                                "Content-Type": "application/json"})
    assert other.status_code == 403 and other.json()["error"]["code"] == "agency_mismatch"

    # The receipt: routed, to which agencies, under which clauses.
    def receipt() -> dict[str, Any] | None:
        r = client.status(event["event_id"]).json()
        return r if r["status"] == "routed" else None

    status = until(receipt, 60, "the routed receipt")
    routed_to = {(r["agency"], r["rule_id"]) for r in status["receipt"]["routed_to"]}
    assert {a for a, _ in routed_to} == {"police", "health"}

    police = [r for r in sse_referrals(intake_url, "police") if str(r.event_id) == event["event_id"]]
    assert police and all(r.agency == "police" for r in police)
    assert {("police", r.rule_id) for r in police} == {x for x in routed_to if x[0] == "police"}
    assert police[0].subject["person"]["name"] == "刘招娣"  # the police need the identity
    health = [r for r in sse_referrals(intake_url, "health") if str(r.event_id) == event["event_id"]]
    assert [r.agency for r in health] == ["health"] and "name" not in health[0].subject.get("person", {})
    assert not [r for r in sse_referrals(intake_url, "education", idle_exit=2)
                if str(r.event_id) == event["event_id"]]
    # A reconnecting reader continues after what it was sent: nothing twice.
    assert sse_referrals(intake_url, "police", idle_exit=2) == []

    # `referral-bus tail` has its own group: it sees the police referrals once, then nothing.
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "REFERRAL_BUS_STATE_DIR": str(tmp_path / "tail")}
    tail = [CLI, "tail", "--agency", "police", "--no-follow", "--idle-exit", "3", "--json"]
    first = subprocess.run(tail, env={**_env(), **env}, capture_output=True, text=True, timeout=120, check=True)
    lines = [Referral.model_validate_json(line) for line in first.stdout.splitlines() if line.strip()]
    assert {r.referral_id for r in lines} >= {r.referral_id for r in police}
    again = subprocess.run(tail, env={**_env(), **env}, capture_output=True, text=True, timeout=120, check=True)
    assert again.stdout.strip() == ""

    # The audit trail: who published, where it was routed, who received it; ids only.
    def audit() -> list[AuditRecord] | None:
        records = [AuditRecord.model_validate_json(r.value or b"")
                   for r in asyncio.run(read_all(kafka, [AUDIT.name]))]
        mine = [a for a in records if a.event_id == event["event_id"]]
        return mine if {"published", "routed", "received"} <= {a.action for a in mine} else None

    records = until(audit, 30, "published, routed and received audit records")
    assert any(a.action == "published" and a.actor == HOSPITAL for a in records)
    assert any(a.action == "received" and a.actor == "police" for a in records)
    assert "刘招娣" not in json.dumps([a.model_dump(mode="json") for a in records], ensure_ascii=False)
    # Nor in any log line: the intake's, the router's, the tail's.
    logs = "\n".join([router.log, *(p.read_text(errors="replace") for p in tmp_path.glob("intake-*.log")),
                      first.stderr, again.stderr])
    assert "event_accepted" in logs
    for value in ("刘招娣", "云阳县人民医院", "birth certificate"):
        assert value not in logs, value


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.mark.parametrize("freeze_s", [5.0, 30.0], ids=["freeze-5s", "freeze-30s"])
def test_outbox_holds_through_a_broker_outage_then_delivers_everything_once(
        broker: LocalBroker, kafka: KafkaSettings, spawn: Callable[..., Any], intake_url: str, tmp_path: Path,
        freeze_s: float) -> None:
    spawn("router")
    total = 40
    path = tmp_path / "outbox.sqlite"
    producer_box = Outbox(path)
    stop = threading.Event()
    drained_at: dict[str, float] = {}

    def sender() -> None:
        # The reporting machine's sender: its own connection to the outbox, as a separate process would.
        client = IntakeClient(intake_url, DEMO_TOKENS[HOSPITAL], Outbox(path), timeout_s=10, max_backoff_s=5)
        while not stop.is_set():
            client.drain(deadline_s=1)
            counts = client.outbox.counts()
            if counts["sent"] == total:
                drained_at["t"] = time.monotonic()
                return

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    ids = []
    frozen_at = 0.0
    for i in range(total):
        ids.append(producer_box.add(body(hospital_event(event_id=str(uuid.uuid4()))))[0])
        if i == total // 2:
            until(lambda: producer_box.counts()["sent"] >= total // 4, 30, "some events sent before the outage")
            broker.freeze()
            frozen_at = time.monotonic()
        time.sleep(0.05 if i < total // 2 else 0)  # a reporter's pace before the outage
    # Everything is queued; the broker is still frozen: nothing is lost, the rest waits.
    held = producer_box.counts()
    assert held["pending"] > 0 and held["rejected"] == 0
    time.sleep(max(0.0, freeze_s - (time.monotonic() - frozen_at)))  # the outage itself, by design
    assert producer_box.counts()["pending"] > 0
    broker.thaw()
    thawed_at = time.monotonic()
    thread.join(timeout=120)
    stop.set()
    assert "t" in drained_at, f"outbox not drained: {producer_box.counts()}"
    drain_s = drained_at["t"] - thawed_at
    assert producer_box.counts() == {"pending": 0, "sent": total, "rejected": 0}

    def routed() -> set[str] | None:
        receipts = [Receipt.model_validate_json(r.value or b"")
                    for r in asyncio.run(read_all(kafka, [RECEIPTS.name]))]
        got = {r.event_id for r in receipts if r.status == "routed"}
        return got if set(ids) <= got else None

    routed_ids = until(routed, 90, "every published event routed")
    assert set(ids) <= routed_ids
    inbound = [json.loads(r.value or b"")["event_id"] for r in asyncio.run(read_all(kafka, [EVENTS.name]))]
    # At-least-once on the topic (a request in flight when the broker froze may land as well as
    # its retry); the intake and every receiver still count each event_id once.
    assert set(inbound) == set(ids)
    print(f"\nfreeze {freeze_s:.0f}s: {total} published, {len(set(ids) & routed_ids)} routed, "
          f"outbox drained {drain_s:.1f}s after the broker came back; pending at thaw: {held['pending']}; "
          f"copies on the inbound topic: {len(inbound) - len(set(inbound))}")
