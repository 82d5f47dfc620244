"""Prometheus config and alert rules: promtool's checks and unit tests, and the metric contract."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .deploy_support import PROMETHEUS_DIR, RULES, TARGET_LABELS, alert_rules, contract, known_series, names_in

RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


def run(promtool: str, *args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    proc = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


@pytest.mark.prometheus
def test_promtool_check_config(promtool: str) -> None:
    run(promtool, "check", "config", "prometheus.yml")


@pytest.mark.prometheus
def test_promtool_check_rules(promtool: str) -> None:
    output = run(promtool, "check", "rules", "rules.yml")
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


@pytest.mark.prometheus
@pytest.mark.parametrize("rule_test", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(promtool: str, rule_test: Path) -> None:
    run(promtool, "test", "rules", rule_test.name, cwd=rule_test.parent)


def _rule_test_cases() -> dict[str, dict[str, int]]:
    """For every alert name, how many firing and non-firing expectations the unit tests hold."""
    seen: dict[str, dict[str, int]] = {}
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text())
        rule_files = [(path.parent / f).resolve() for f in doc["rule_files"]]
        assert rule_files == [RULES.resolve()], f"{path.name} must test deploy/prometheus/rules.yml"
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                counts = seen.setdefault(check["alertname"], {"firing": 0, "quiet": 0})
                counts["firing" if check.get("exp_alerts") else "quiet"] += 1
    return seen


def test_every_alert_rule_has_firing_and_quiet_unit_tests() -> None:
    cases = _rule_test_cases()
    for rule in alert_rules():
        counts = cases.get(rule["alert"], {"firing": 0, "quiet": 0})
        assert counts["firing"] > 0, f"{rule['alert']}: no unit test where it fires"
        assert counts["quiet"] > 0, f"{rule['alert']}: no unit test where it stays quiet"
    unknown = set(cases) - {rule["alert"] for rule in alert_rules()}
    assert not unknown, f"unit tests for alerts that rules.yml does not define: {unknown}"


def test_the_issue_s_alerts_exist() -> None:
    """The operations issue asks for these; renaming one is a change to the on-call runbook."""
    assert {rule["alert"] for rule in alert_rules()} >= {
        "ReferralBusUrgentAlertOverdue",
        "ReferralBusDeadLettersRising",
        "ReferralBusConsumerLagGrowing",
        "ReferralBusAgencySilent",
        "ReferralBusWorkerDown",
    }


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_rule_uses_only_contract_metrics_and_labels(rule: dict[str, Any]) -> None:
    names = names_in(rule["expr"])
    series = known_series()
    unknown = names.metrics - set(series)
    assert not unknown, f"{rule['alert']} uses metrics not in deploy/metrics.yaml: {sorted(unknown)}"
    assert names.metrics, f"{rule['alert']}: found no metric in {rule['expr']!r}"
    allowed = set(TARGET_LABELS).union(*(series[m] for m in names.metrics))
    assert names.labels <= allowed, f"{rule['alert']} uses unknown labels {sorted(names.labels - allowed)}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_rule_has_severity_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"page", "ticket"}
    assert {"summary", "description", "runbook"} <= set(rule["annotations"])
    anchor = rule["annotations"]["runbook"].split("#", 1)[1]
    readme = (PROMETHEUS_DIR.parent / "README.md").read_text()
    assert f"## {anchor.replace('-', ' ')}".lower() in readme.lower(), f"README has no section #{anchor}"


def test_scrape_jobs_match_the_contract() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: (job["static_configs"][0]["targets"], job.get("metrics_path", "/metrics"))
        for job in config["scrape_configs"]
    }
    expected = {
        name: ([f"{spec['service']}:{spec['port']}"], spec["path"]) for name, spec in contract()["jobs"].items()
    }
    assert jobs == expected
    assert config["global"]["evaluation_interval"]
    assert config["rule_files"] == ["rules.yml"]
