"""Issue #17 on the real broker: a corpus of hostile messages on every topic the router, the
broadcast service, the delivery reader and the intake read, then a valid missing-child report.

The report is routed and alerted, every service is still running (the alerts service too, which
also reads inbound events; the broadcast service also
after a restart that reads hostile state records), each hostile message is accounted for (a dead
letter at its own position, or routed; counted by each reader's metrics), and nothing a sender
wrote is in any service's log, a dead letter's reasons, a receipt or the audit trail.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaError

from bus.boundary import EVENT, REFERRAL, Refusal
from bus.kafka.clients import producer
from bus.kafka.reader import read_all
from bus.local_broker import free_port
from bus.settings import KafkaSettings
from schemas.alerts import PoliceAlert
from schemas.referrals import DeadLetter, Referral
from services.intake.demo import DEMO_TOKENS
from tests.hostile import (
    HOSPITAL,
    MARK,
    claims_corpus,
    dumps,
    hospital_report,
    inbound_corpus,
    missing_child,
    receipt_corpus,
    referral_corpus,
)
from tests.integration.conftest import Service, wait_for
from topics.catalog import (
    AUDIT,
    BROADCAST_STATE,
    DEAD_LETTERS,
    EVENTS,
    INTAKE_CLAIMS,
    POLICE_ALERTS,
    RECEIPTS,
    referral_topic_name,
)

pytestmark = pytest.mark.integration

COMMAND_CENTRE = "police.command_center"


def produce(kafka: KafkaSettings, topic: str, items: Sequence[tuple[str, bytes | None]],
            key: Callable[[int], bytes] = lambda i: f"hostile-{i}".encode()) -> dict[str, tuple[int, int] | None]:
    """Produce each message; {class: (partition, offset)}, or None where the broker refused it."""

    async def go() -> dict[str, tuple[int, int] | None]:
        p = producer(kafka, max_request_size=4 * 1024 * 1024)
        await p.start()
        out: dict[str, tuple[int, int] | None] = {}
        try:
            for i, (name, value) in enumerate(items):
                try:
                    meta = await p.send_and_wait(topic, value=value, key=key(i))
                    out[name] = (meta.partition, meta.offset)
                except KafkaError:
                    out[name] = None
        finally:
            await p.stop()
        return out

    return asyncio.run(go())


def records(kafka: KafkaSettings, topic: str) -> list[Any]:
    return asyncio.run(read_all(kafka, [topic]))


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text of a metrics listener as {(name, labels): value}."""
    out = {}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")))
            out[(match.group(1), labels)] = float(match.group(3))
    return out


def total(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in metrics.items() if n == name and all((k, labels[k]) in ls for k in labels))


def up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_hostile_messages_on_every_topic_stop_nothing(kafka: KafkaSettings, spawn: Callable[..., Service],
                                                      tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("router", "broadcast", "feed", "intake", "intake_metrics")}
    router = spawn("router", env={"REFERRAL_BUS_ROUTER_METRICS_PORT": str(ports["router"])})
    broadcast = spawn("broadcast", env={"REFERRAL_BUS_BROADCAST_METRICS_PORT": str(ports["broadcast"]),
                                        "REFERRAL_BUS_BROADCAST_HTTP_PORT": str(ports["feed"]),
                                        "REFERRAL_BUS_BROADCAST_HTTP_HOST": "127.0.0.1"})
    intake = spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(ports["intake"]),
                                  "REFERRAL_BUS_INTAKE_METRICS_PORT": str(ports["intake_metrics"])})
    api = f"http://127.0.0.1:{ports['intake']}"
    wait_for(lambda: up(f"{api}/healthz"), 30, "the intake")
    wait_for(lambda: up(f"http://127.0.0.1:{ports['feed']}/healthz"), 60, "the broadcast service")
    # The alerts service also reads events.inbound (it follows cases): it must survive them too.
    alerts = spawn("alerts")
    services = {"router": router, "broadcast": broadcast, "intake": intake, "alerts": alerts}

    # -- the corpus, on every topic these services read ---------------------------------------
    inbound = inbound_corpus()
    at = produce(kafka, EVENTS.name, inbound)
    referrals = referral_corpus(COMMAND_CENTRE)
    produce(kafka, referral_topic_name(COMMAND_CENTRE), referrals)
    produce(kafka, RECEIPTS.name, receipt_corpus())
    produce(kafka, INTAKE_CLAIMS.name, claims_corpus())
    state_corpus = [("not_a_state", dumps({"case_id": MARK})), ("deep", b"[" * 4000), ("garbage", MARK.encode())]
    produce(kafka, BROADCAST_STATE.name, state_corpus,
            key=lambda i: (MARK if i else "\ud800").encode("utf-8", "replace"))
    hostile_requests = [
        ("nan", dumps(hospital_report()).replace(b'"age": 0', b'"age": NaN')),
        ("deep", b"[" * 5000), ("unknown_kind", dumps(hospital_report(kind=MARK))),
        ("surrogate", dumps(hospital_report(description="\ud800"))),
        ("key", dumps({**hospital_report(), MARK: 1})),
    ]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {DEMO_TOKENS[HOSPITAL]}"}
    for name, raw in hostile_requests:
        r = httpx.post(f"{api}/v1/events", content=raw, headers=headers, timeout=10)
        assert r.status_code == 422 and MARK not in r.text, (name, r.text)

    # -- then a valid missing-child report, and a hospital's report through the intake ----------
    report = missing_child(description="Child last seen at the square.")
    produce(kafka, EVENTS.name, [("valid", dumps(report))], key=lambda _: report["event_id"].encode())
    hospital = hospital_report()
    assert httpx.post(f"{api}/v1/events", content=dumps(hospital), headers=headers, timeout=10).status_code == 202

    def routed_and_alerted() -> bool:
        leads = [REFERRAL.decode(r.value) for r in records(kafka, referral_topic_name(COMMAND_CENTRE))]
        alerts = [PoliceAlert.model_validate_json(r.value) for r in records(kafka, POLICE_ALERTS.name)]
        return (any(isinstance(x, Referral) and str(x.event_id) == report["event_id"] for x in leads)
                and any(str(a.event_id) == report["event_id"] for a in alerts))

    wait_for(lambda: _safe(routed_and_alerted), 90, "the valid report's lead referral and police alert")
    receipt = wait_for(lambda: (r := httpx.get(f"{api}/v1/events/{hospital['event_id']}", headers=headers,
                                               timeout=5)).json().get("status") == "routed" and r, 60,
                       "the hospital's routed receipt")
    assert receipt.json()["receipt"]["reporter_agency"] == HOSPITAL

    # The command centre's delivery stream reads past the hostile messages on its topic.
    delivered = _stream(api, COMMAND_CENTRE)
    assert report["event_id"] in {str(r["event_id"]) for r in delivered}

    # -- every hostile inbound message is accounted for -------------------------------------------
    letters = {(d.partition, d.offset): d for d in (DeadLetter.model_validate_json(r.value)
                                                    for r in records(kafka, DEAD_LETTERS.name))
               if d.topic == EVENTS.name}
    routed_ids = {json.loads(r.value)["event_id"] for r in records(kafka, RECEIPTS.name)
                  if r.value and b'"routed"' in r.value}
    unaccounted = []
    for name, sent in inbound:
        position = at[name]
        if position is None:
            continue  # refused by the broker itself: never on the bus
        if position in letters:
            continue
        decoded = EVENT.decode(sent)
        if isinstance(decoded, Refusal) or str(decoded.event_id) not in routed_ids:
            unaccounted.append(name)
    assert not unaccounted, unaccounted
    assert all(letter.reason for letter in letters.values())

    # -- each reader counted what it refused ------------------------------------------------------
    router_metrics = scrape(ports["router"])
    assert total(router_metrics, "referral_bus_dead_letters_total") == len(letters)
    intake_metrics = scrape(ports["intake_metrics"])
    assert total(intake_metrics, "referral_bus_delivery_refused_total") == len(referrals)
    assert total(intake_metrics, "referral_bus_intake_records_refused_total", topic="receipts") == len(receipt_corpus())
    assert total(intake_metrics, "referral_bus_intake_records_refused_total", topic="claims") == len(claims_corpus())
    broadcast_metrics = scrape(ports["broadcast"])
    on_bus = sum(1 for p in at.values() if p is not None) + 2  # and the two valid events
    wait_for(lambda: total(scrape(ports["broadcast"]), "referral_bus_broadcast_inputs_total") >= on_bus, 30,
             "the broadcast service's count of every inbound message")
    assert total(broadcast_metrics, "referral_bus_internal_errors_total") == 0

    # -- every service still runs; the broadcast service also restarts over hostile state ---------
    for name, svc in services.items():
        assert svc.process is not None and svc.process.poll() is None, f"{name} exited:\n{svc.log[-3000:]}"
    broadcast.stop()
    broadcast.start()
    wait_for(lambda: up(f"http://127.0.0.1:{ports['feed']}/healthz"), 60, "the broadcast service after a restart")
    assert total(scrape(ports["broadcast"]), "referral_bus_internal_errors_total",
                 step="broadcast_restore") == len(state_corpus)

    # -- nothing a sender wrote came back out ------------------------------------------------------
    for name, svc in services.items():
        assert MARK not in svc.log, f"{name}'s log repeats what a sender wrote"
    for letter in letters.values():
        assert MARK not in letter.model_dump_json(exclude={"original_b64", "original_prefix_b64"})
    for topic in (RECEIPTS.name, AUDIT.name):
        for r in records(kafka, topic):
            if not (r.key or b"").startswith(b"hostile-"):  # not the corpus this test wrote there
                assert MARK.encode() not in (r.value or b""), topic


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (ValueError, KafkaError):
        return False


def _stream(api: str, agency: str) -> list[dict[str, Any]]:
    out = []
    with httpx.stream("GET", f"{api}/v1/referrals/stream", params={"idle_exit": 4, "max": 100},
                      headers={"Authorization": f"Bearer {DEMO_TOKENS[agency]}"}, timeout=90) as r:
        assert r.status_code == 200
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "referral":
                out.append(json.loads(line[6:]))
    time.sleep(0.5)  # the reader's last commits and counts
    return out
