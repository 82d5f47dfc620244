"""Delivery metrics, shared by `tail`, the intake's delivery endpoint and the pager. Bounded labels only."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.duplicates_dropped = Counter(
            "referral_bus_duplicates_dropped", "Copies of an already-seen id dropped where consumed.",
            ["consumer"], registry=registry)
        self.delivered = Counter(
            "referral_bus_referrals_delivered", "Referrals presented to an agency reader, by agency.",
            ["agency"], registry=registry)
        self.refused = Counter(
            "referral_bus_delivery_refused",
            "Messages on an agency's referral topic that were not a referral for it, by reason.",
            ["reason"], registry=registry)
