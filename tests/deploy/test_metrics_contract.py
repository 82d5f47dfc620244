"""deploy/metrics.yaml against the metrics the services really declare.

Each service's `metrics.py` holds classes that take a CollectorRegistry (see STYLE.md). They are
instantiated on a fresh registry and their metrics compared with the contract, both ways.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from .deploy_support import REPO, MetricSpec, metric_specs

SERVICE_METRIC_MODULES = sorted(p.parent.name for p in (REPO / "services").glob("*/metrics.py"))


def declared(service: str) -> dict[str, tuple[str, frozenset[str]]]:
    """{scraped name: (type, labels)} for every metric the service's metrics.py declares."""
    module = importlib.import_module(f"services.{service}.metrics")
    found: dict[str, tuple[str, frozenset[str]]] = {}
    classes: list[tuple[str, Any]] = inspect.getmembers(module, inspect.isclass)
    for _, cls in classes:
        if cls.__module__ != module.__name__ or "registry" not in inspect.signature(cls).parameters:
            continue
        instance: Any = cls(registry=CollectorRegistry())
        for value in vars(instance).values():
            if isinstance(value, MetricWrapperBase):
                kind = str(value._type)
                name = f"{value._name}_total" if kind == "counter" else value._name
                found[name] = (kind, frozenset(value._labelnames))
    return found


def test_services_with_metrics_exist() -> None:
    assert {"router", "alerts", "broadcast"} <= set(SERVICE_METRIC_MODULES)


@pytest.mark.parametrize("service", SERVICE_METRIC_MODULES)
def test_service_metrics_are_in_the_contract(service: str) -> None:
    specs = metric_specs()
    metrics = declared(service)
    assert metrics, f"services/{service}/metrics.py declares no metric"
    for name, (kind, labels) in metrics.items():
        assert name in specs, f"{service} declares {name}: add it to deploy/metrics.yaml"
        spec = specs[name]
        assert (kind, labels) == (spec.type, spec.labels), f"{name}: {service} declares {kind} {sorted(labels)}"
        assert service in spec.services, f"{name}: add {service} to its services in deploy/metrics.yaml"


@pytest.mark.parametrize("spec", list(metric_specs().values()), ids=lambda s: s.name)
def test_contract_metric_is_declared_by_its_services(spec: MetricSpec) -> None:
    for service in spec.services:
        path = REPO / "services" / service / "metrics.py"
        if not path.exists():
            pytest.fail(f"{spec.name}: services/{service}/metrics.py does not exist")
        assert spec.name in declared(service), f"{spec.name} is not declared in {Path(*path.parts[-3:])}"


def test_contract_is_well_formed() -> None:
    for spec in metric_specs().values():
        assert spec.name.startswith("referral_bus_")
        assert spec.type in {"counter", "gauge", "histogram"}
        assert spec.name.endswith("_total") == (spec.type == "counter"), f"{spec.name}: counters end in _total"
        assert not spec.labels & {"job", "instance", "le"}, f"{spec.name}: reserved label"
        assert not spec.labels & {"event_id", "case_id", "referral_id", "name", "phone"}, (
            f"{spec.name}: labels must be bounded codes, never ids or personal data"
        )
