"""The Grafana dashboard and provisioning: structure, and PromQL limited to the metric contract."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .deploy_support import DASHBOARD, DEPLOY, TARGET_LABELS, grafana_to_promql, known_series, names_in

PROVISIONING = DEPLOY / "grafana" / "provisioning"


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return found


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    out = [
        (f"panel {p['id']} {p['title']!r} target {t['refId']}", t["expr"])
        for p in panels()
        for t in p.get("targets", [])
    ]
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            # label_values(METRIC_SELECTOR, label): the selector is PromQL, the label must exist.
            selector, label = query.removeprefix("label_values(").removesuffix(")").rsplit(",", 1)
            out.append((f"variable {var['name']}", f"count by ({label.strip()}) ({selector})"))
    return out


def test_dashboard_shape() -> None:
    dash = dashboard()
    assert dash["uid"] == "referral-bus"
    assert dash["title"]
    assert isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"panel {panel['title']!r} is off the grid"
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel.get("description"), f"panel {panel['id']} needs a title and a description"
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"panel {panel['title']!r} repeats a refId"


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels():
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_issue_panels_are_there() -> None:
    """What the operations issue asks the dashboard to show, by the metric behind it."""
    used = {m for _, expr in queries() for m in names_in(expr).metrics}
    assert used >= {
        "referral_bus_events_received_total",  # events by kind and jurisdiction
        "referral_bus_referrals_total",  # referrals by agency
        "referral_bus_alert_ack_seconds_bucket",  # ack latency (histogram_quantile)
        "referral_bus_escalations_total",
        "referral_bus_dead_letters_total",
        "referral_bus_consumer_lag",
        "referral_bus_alerts_overdue",
    }
    exprs = " ".join(expr for _, expr in queries())
    assert "histogram_quantile" in exprs and "sum by (kind)" in exprs and "sum by (jurisdiction)" in exprs


@pytest.mark.parametrize(("where", "expr"), queries(), ids=[w for w, _ in queries()])
def test_query_uses_only_contract_metrics_and_labels(where: str, expr: str) -> None:
    names = names_in(grafana_to_promql(expr))
    series = known_series()
    unknown = names.metrics - set(series)
    assert not unknown, f"{where} uses metrics not in deploy/metrics.yaml: {sorted(unknown)}"
    assert names.metrics, f"{where}: found no metric in {expr!r}"
    allowed = set(TARGET_LABELS).union(*(series[m] for m in names.metrics))
    assert names.labels <= allowed, f"{where} uses labels {sorted(names.labels - allowed)} its metrics lack"


@pytest.mark.prometheus
def test_every_query_parses(promtool: str, tmp_path: Path) -> None:
    """promtool parses each query as a recording rule (Grafana variables replaced first)."""
    rules = [
        {"record": f"dashboard:query:{i}", "expr": grafana_to_promql(expr)} for i, (_, expr) in enumerate(queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_datasource_provisioning_matches_the_dashboard() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"]
    uids = {ds["uid"] for ds in datasources if ds["type"] == "prometheus"}
    used = {p["datasource"]["uid"] for p in panels() if "datasource" in p}
    used |= {t["datasource"]["uid"] for p in panels() for t in p.get("targets", []) if "datasource" in t}
    assert used and used <= uids
    prometheus = next(ds for ds in datasources if ds["type"] == "prometheus")
    assert prometheus["url"] == "http://prometheus:9090"  # the compose service


def test_dashboard_provider_points_at_a_mounted_directory() -> None:
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "referral-bus.yml").read_text())["providers"]
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    mounts = {
        target: source
        for volume in compose["services"]["grafana"]["volumes"]
        for source, target, *_ in [volume.split(":")]
    }
    for provider in providers:
        path = provider["options"]["path"]
        assert path in mounts, f"grafana does not mount {path}"
        assert (DEPLOY.parent / mounts[path]).resolve() == DASHBOARD.parent.resolve()
