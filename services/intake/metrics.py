"""Intake metrics. Labels are codes from bounded sets (agency codes, outcomes): never personal data."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from bus.delivery_metrics import DeliveryMetrics

OUTCOMES = ("accepted", "duplicate", "invalid", "unauthenticated", "throttled", "forbidden", "conflict",
            "too_large", "unsupported_media_type", "timeout", "bad_request", "unavailable")


#: What became of an answer posted to `POST /v1/referrals/{id}/answers`.
ANSWER_OUTCOMES = ("accepted", "duplicate", "invalid", "unknown_id", "not_entitled", "agency_mismatch",
                   "already_final", "no_effect", "conflict", "unavailable")


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "referral_bus_intake_requests", "Publish requests to the intake, by outcome.",
            ["outcome"], registry=registry)
        self.answers = Counter(
            "referral_bus_intake_answers", "Answers posted to the intake, by outcome.", ["outcome"],
            registry=registry)
        self.published = Counter(
            "referral_bus_intake_published", "Events acknowledged by the broker, by authenticated agency.",
            ["agency"], registry=registry)
        self.publish_seconds = Histogram(
            "referral_bus_intake_publish_seconds", "Time from request to the broker's acknowledgement.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=registry)
        self.records_refused = Counter(
            "referral_bus_intake_records_refused",
            "Records on a topic the intake reads (receipts, claims, states) that were not what that topic holds.",
            ["topic", "reason"], registry=registry)
        self.gate = Counter(
            "referral_bus_intake_gate",
            "Messages on agencies' own Kafka topics read by the intake's gate, by agency (the topic's), message "
            "(event, answer) and outcome (admitted, duplicate, or the reason code it was refused with).",
            ["agency", "message", "outcome"], registry=registry)
        self.internal_errors = Counter(
            "referral_bus_internal_errors",
            "Messages a per-message step could not handle because of an unexpected error (a bug), by step.",
            ["step"], registry=registry)


class DeliveryStreamMetrics(DeliveryMetrics):
    """The agency delivery stream's counters: an agency reader's (`bus/delivery_metrics.py`)."""
