"""The bus's own metrics through a real Prometheus: a real broker, the router (and the alerts
service) as subprocesses, Debian's prometheus scraping them every second with the deploy rules."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bus.demo_events import INVALID_EVENT, scripted_events
from bus.local_broker import LocalBroker
from bus.settings import KafkaSettings
from rules.deadlines import Deadlines
from rules.engine import load_rulebook, route
from schemas.events import parse_event_obj
from tests.integration.conftest import Service, publish, wait_for

from .deploy_support import DEPLOY, PROMETHEUS_MISSING, require_binary
from .prometheus_server import PrometheusServer, free_port, sample_value

pytestmark = [pytest.mark.integration, pytest.mark.prometheus, pytest.mark.timeout(90)]


def serving(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def by_labels(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(s["metric"].get(label, "") for label in labels): float(s["value"][1]) for s in result}


def test_router_and_alerts_metrics_read_back_through_prometheus(broker: LocalBroker, tmp_path: Path,
                                                                record_property: Callable[[str, object], None]) -> None:
    require_binary("prometheus", PROMETHEUS_MISSING)
    started = time.monotonic()
    router_port, alerts_port = free_port(), free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
           "REFERRAL_BUS_STATE_DIR": str(tmp_path / "state"),
           "REFERRAL_BUS_ROUTER_METRICS_PORT": str(router_port),
           "REFERRAL_BUS_ALERTS_METRICS_PORT": str(alerts_port),
           "REFERRAL_BUS_BROADCAST_METRICS_PORT": "0"}
    services = [Service(["router"], env, tmp_path / "router.log").start(),
                Service(["alerts"], env, tmp_path / "alerts.log").start()]
    _router, alerts = services
    try:
        raw = scripted_events()
        events = [parse_event_obj(e) for e in raw]
        book, deadlines = load_rulebook(), Deadlines.load()
        referrals = [r for e in events for r in route(e, book, deadlines=deadlines)]
        publish(KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap),
                [e.model_dump_json().encode() for e in events] + [INVALID_EVENT])

        wait_for(lambda: serving(router_port), 30, "the router's /metrics")
        # The alerts service is optional here: scraped when it starts, skipped in the checks if not.
        alerts_up = False
        try:
            wait_for(lambda: serving(alerts_port) or alerts.process is None or alerts.process.poll() is not None,
                     20, "the alerts service's /metrics (or its exit)")
            alerts_up = serving(alerts_port)
        except AssertionError:
            alerts_up = False
        targets = {"router": [f"127.0.0.1:{router_port}"]}
        if alerts_up:
            targets["alerts"] = [f"127.0.0.1:{alerts_port}"]

        with PrometheusServer(targets, rule_files=[DEPLOY / "prometheus" / "rules.yml"]) as prom:
            want_events = Counter((e.kind, e.jurisdiction) for e in events)
            query = "sum by (kind, jurisdiction) (referral_bus_events_received_total)"
            got = prom.wait_for(query, lambda r: by_labels(r, "kind", "jurisdiction") == dict(want_events),
                                timeout=40)
            assert by_labels(got, "kind", "jurisdiction") == {k: float(v) for k, v in want_events.items()}

            total = prom.wait_for("sum(referral_bus_referrals_total)",
                                  lambda r: r != [] and sample_value(r) == len(referrals), timeout=15)
            assert sample_value(total) == len(referrals)
            by_agency = by_labels(prom.query("sum by (agency, role) (referral_bus_referrals_total)"), "agency", "role")
            assert by_agency == {k: float(v) for k, v in Counter((r.agency, r.role) for r in referrals).items()}

            dead = prom.wait_for('referral_bus_dead_letters_total{reason="invalid_event"}',
                                 lambda r: r != [] and sample_value(r) == 1, timeout=15)
            assert sample_value(dead) == 1
            assert sample_value(prom.query('up{job="router"}')) == 1

            groups = prom._get("/api/v1/rules")["groups"]
            rules = [rule for g in groups for rule in g["rules"]]
            assert rules and all(rule["health"] != "err" for rule in rules), rules

            if alerts_up:
                assert sample_value(prom.wait_for('up{job="alerts"}', lambda r: r != [], timeout=15)) == 1
                raised = prom.wait_for('referral_bus_alerts_total{jurisdiction="xian", exercise="false"}',
                                       lambda r: r != [] and sample_value(r) >= 1, timeout=20)
                assert sample_value(raised) == 1  # the 西安 missing child, once
    finally:
        for svc in services:
            svc.stop()
    record_property("alerts_scraped", alerts_up)
    assert time.monotonic() - started < 60, "keep this test under a minute"
