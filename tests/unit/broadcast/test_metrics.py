"""Metric names are a contract with dashboards: pinned here."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from services.broadcast.metrics import BroadcastMetrics


def test_metric_names_and_labels() -> None:
    registry = CollectorRegistry()
    metrics = BroadcastMetrics(registry)
    metrics.broadcasts.labels("Alert").inc()
    metrics.refusals.labels("not_police").inc()
    text = generate_latest(registry).decode()
    assert 'referral_bus_broadcasts_total{message_type="Alert"} 1.0' in text
    assert 'referral_bus_broadcasts_total{message_type="Cancel"} 0.0' in text
    assert 'referral_bus_broadcast_refusals_total{reason="not_police"} 1.0' in text
    assert 'referral_bus_broadcast_refusals_total{reason="no_guardian_consent"} 0.0' in text
    assert 'referral_bus_broadcast_withdrawals_total{reason="guardian_consent_withdrawn"} 0.0' in text
