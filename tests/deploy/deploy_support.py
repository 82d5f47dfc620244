"""Shared by the deployment tests: paths, the metric contract, and a small PromQL reader.

The PromQL reader is not a parser: it finds the metric names and label names an expression
uses. Syntax is checked separately by promtool, so it only has to handle valid PromQL.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "referral-bus.json"

PROMTOOL_MISSING = "promtool is not installed: run deploy/install-prometheus.sh (CI does)"
PROMETHEUS_MISSING = "prometheus is not installed: run deploy/install-prometheus.sh (CI does)"



def require_binary(name: str, reason: str) -> str:
    """The binary's path; skip when it is absent, but fail under CI, which installs it."""
    import pytest

    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: deploy/install-prometheus.sh should have run)")
        pytest.skip(reason)
    return path


# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: str
    labels: frozenset[str]
    services: tuple[str, ...]

    def series_names(self) -> dict[str, frozenset[str]]:
        """Every series name this metric is scraped as, with the labels each carries."""
        if self.type == "histogram":
            return {
                f"{self.name}_bucket": self.labels | {"le"},
                f"{self.name}_sum": self.labels,
                f"{self.name}_count": self.labels,
                f"{self.name}_created": self.labels,
            }
        if self.type == "counter":
            return {self.name: self.labels, f"{self.name.removesuffix('_total')}_created": self.labels}
        return {self.name: self.labels}


@cache
def contract() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "metrics.yaml").read_text())
    return data


@cache
def metric_specs() -> dict[str, MetricSpec]:
    """deploy/metrics.yaml's metrics, by scraped name."""
    return {
        m["name"]: MetricSpec(m["name"], m["type"], frozenset(m["labels"]), tuple(m["services"]))
        for m in contract()["metrics"]
    }


@cache
def known_series() -> dict[str, frozenset[str]]:
    """Every series name a query may use (the contract's and Prometheus' own), with labels."""
    series: dict[str, frozenset[str]] = {}
    for spec in metric_specs().values():
        series.update(spec.series_names())
    for builtin in contract()["prometheus_builtin"]:
        series[builtin["name"]] = frozenset(builtin["labels"])
    return series


# -- PromQL ---------------------------------------------------------------------------------------

_KEYWORDS = frozenset({
    "and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "inf", "nan", "start", "end",
})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+|@\s*[\w.()]+")
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")
_LABEL_IN_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_NUMBER_LIKE = re.compile(r"^(?:0x[0-9a-fA-F]+|\d.*|[eE]\d+)$")

# Grafana's variables, replaced by something of the same shape before PromQL is checked.
_GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
}


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's built-in and template variables so promtool can parse the query."""
    for name, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


@dataclass(frozen=True)
class QueryNames:
    metrics: frozenset[str]
    labels: frozenset[str]  # in matchers and in by/without/on/ignoring/group_* clauses


def names_in(expr: str) -> QueryNames:
    """The metric names and label names a (valid) PromQL expression uses."""
    text = _STRING.sub('""', expr)
    labels: set[str] = set()
    for body in _MATCHERS.findall(text):
        labels.update(_LABEL_IN_MATCHER.findall(body))
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    for _clause, body in _GROUPING.findall(text):
        labels.update(label.strip() for label in body.split(",") if label.strip())
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    metrics = {
        name
        for name, call in _IDENT.findall(text)
        if not call and name.lower() not in _KEYWORDS and not _NUMBER_LIKE.match(name)
    }
    labels.discard("__name__")
    return QueryNames(frozenset(metrics), frozenset(labels))


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
    return rules
