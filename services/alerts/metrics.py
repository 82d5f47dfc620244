"""Alerts service metrics (names fixed by deploy/metrics.yaml). Labels are codes from bounded sets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.answers import REFUSAL_REASONS


class AlertsMetrics:
    """One instance per registry, so each test gets fresh counters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.alerts = Counter(
            "referral_bus_alerts", "Urgent police alerts raised.", ["jurisdiction", "exercise"],
            registry=registry)
        self.overdue = Gauge(
            "referral_bus_alerts_overdue",
            "Urgent alerts past their acknowledgement deadline and not acknowledged.", ["jurisdiction"],
            registry=registry)
        self.ack_seconds = Histogram(
            "referral_bus_alert_ack_seconds", "Time from an alert to its acknowledgement.",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600), registry=registry)
        self.responses = Counter(
            "referral_bus_responses", "Responses from agencies, by answer.", ["answer"], registry=registry)
        self.escalations = Counter(
            "referral_bus_escalations", "Escalations of unacknowledged alerts, by level.", ["level"],
            registry=registry)
        self.resends = Counter(
            "referral_bus_alert_resends", "Alerts re-sent because no acknowledgement came.", registry=registry)
        self.open_cases = Gauge(
            "referral_bus_open_cases", "Open missing-child cases.", ["jurisdiction"], registry=registry)
        self.duplicates_dropped = Counter(
            "referral_bus_duplicates_dropped", "Copies of an already-seen id dropped where consumed.",
            ["consumer"], registry=registry)
        self.case_close_refusals = Counter(
            "referral_bus_case_close_refusals", "Attempts to close a case other than a police resolution.",
            registry=registry)
        self.answers_refused = Counter(
            "referral_bus_answers_refused", "Answers not applied (written to the refused-answers topic), by reason.",
            ["reason"], registry=registry)
        for reason in REFUSAL_REASONS:
            self.answers_refused.labels(reason)
        self.records_refused = Counter(
            "referral_bus_alerts_records_refused",
            "Records on a topic the alerts service reads that were not what that topic holds, by input and reason.",
            ["input", "reason"], registry=registry)
        self.internal_errors = Counter(
            "referral_bus_internal_errors",
            "Messages a per-message step could not handle because of an unexpected error (a bug), by step.",
            ["step"], registry=registry)
        self.consumer_lag = Gauge(
            "referral_bus_consumer_lag", "Messages not yet consumed, per consumer group and topic.",
            ["group", "topic"], registry=registry)
