"""Router metrics. Labels are codes from bounded sets: never personal data."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_received = Counter(
            "referral_bus_events_received", "Events accepted by the router.",
            ["kind", "jurisdiction", "reporter_agency"], registry=registry)
        self.referrals = Counter(
            "referral_bus_referrals", "Referrals produced, by receiving agency and role.",
            ["agency", "role"], registry=registry)
        self.unrouted = Counter(
            "referral_bus_unrouted_events", "Events no rule covered, sent to the joint office for triage.",
            ["jurisdiction"], registry=registry)
        self.dead_letters = Counter(
            "referral_bus_dead_letters", "Inbound messages refused, by reason.", ["reason"], registry=registry)
        self.internal_errors = Counter(
            "referral_bus_internal_errors",
            "Messages a per-message step could not handle because of an unexpected error (a bug), by step; "
            "each became a dead letter internal_error instead of stopping the service.",
            ["step"], registry=registry)
        self.routing_seconds = Histogram(
            "referral_bus_routing_seconds", "Time from the report to its referrals leaving the router.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry)
