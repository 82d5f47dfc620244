"""The Prometheus test helper against a real prometheus and a real prometheus_client exporter.

One Prometheus serves the module: a new one waits ~5 s for its service discovery to hand the
scrape manager its first targets, so the tests share it to stay well under 20 s.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from .deploy_support import DEPLOY, PROMETHEUS_MISSING, REPO, require_binary
from .prometheus_server import PrometheusServer, free_port, sample_value

pytestmark = pytest.mark.prometheus


@dataclass
class Live:
    """A prometheus_client exporter on a loopback port, scraped by a real Prometheus."""

    prom: PrometheusServer
    target: str
    referrals: Counter
    overdue: Gauge


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    require_binary("prometheus", PROMETHEUS_MISSING)
    registry = CollectorRegistry()
    referrals = Counter(
        "referral_bus_referrals", "Referrals produced.", ["agency", "role"], registry=registry
    )
    overdue = Gauge(
        "referral_bus_alerts_overdue", "Overdue alerts.", ["jurisdiction"], registry=registry
    )
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    target = f"127.0.0.1:{port}"
    try:
        rules = [DEPLOY / "prometheus" / "rules.yml"]
        with PrometheusServer({"router": [target]}, rule_files=rules) as prom:
            yield Live(prom, target, referrals, overdue)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_counter_value_is_read_back_through_the_api(live: Live) -> None:
    live.referrals.labels(agency="civil_affairs", role="lead").inc(3)
    query = 'referral_bus_referrals_total{agency="civil_affairs", role="lead"}'

    result = live.prom.wait_for(query)
    assert sample_value(result) == 3.0
    assert result[0]["metric"]["job"] == "router"
    assert result[0]["metric"]["instance"] == live.target

    live.referrals.labels(agency="civil_affairs", role="lead").inc(2)
    live.prom.wait_for(query, lambda r: bool(r) and sample_value(r) == 5.0)
    assert sample_value(live.prom.query('up{job="router"}')) == 1.0
    assert live.prom.targets_health() == {f"http://{live.target}/metrics": "up"}


def test_deploy_rule_fires_on_live_metrics(live: Live) -> None:
    """rules.yml, loaded by a real Prometheus, fires on a gauge exported by prometheus_client."""
    live.overdue.labels(jurisdiction="yunnan").set(1)

    def overdue_alerts() -> list[dict[str, Any]]:
        return [
            a for a in live.prom.alerts()
            if a["labels"]["alertname"] == "ReferralBusUrgentAlertOverdue"
        ]

    # The helper evaluates every group each second, whatever its interval in rules.yml.
    fired = live.prom.wait_for(
        overdue_alerts, lambda alerts: any(a["state"] == "firing" for a in alerts)
    )
    assert fired[0]["labels"]["jurisdiction"] == "yunnan"
    assert fired[0]["labels"]["severity"] == "page"
    assert "yunnan" in fired[0]["annotations"]["summary"]


def test_context_manager_stops_prometheus_and_removes_its_storage() -> None:
    require_binary("prometheus", PROMETHEUS_MISSING)
    with PrometheusServer({}) as prom:
        proc = prom._proc
        storage = Path(prom.config_file).parent
        assert prom.query("vector(1)")[0]["value"][1] == "1"
    assert proc is not None and proc.poll() is not None
    assert not storage.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{prom.url}/-/ready", timeout=1.0)


def test_a_test_process_killed_outright_leaves_no_prometheus_behind() -> None:
    require_binary("prometheus", PROMETHEUS_MISSING)
    starter = subprocess.Popen(
        [sys.executable, "-c", "import time\n"
         "from tests.deploy.prometheus_server import PrometheusServer\n"
         "server = PrometheusServer({}).start()\n"
         "print(server.pid, flush=True)\n"
         "time.sleep(120)\n"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        prometheus = int(starter.stdout.readline())
        assert _alive(prometheus)
    finally:
        starter.kill()
        starter.wait()
    deadline = time.monotonic() + 15
    while _alive(prometheus) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(prometheus), "prometheus outlived the process that started it"


def _alive(pid: int) -> bool:
    """`pid` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
