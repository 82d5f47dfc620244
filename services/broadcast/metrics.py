"""Broadcast metrics. Labels are codes from bounded sets: never personal data."""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge

from schemas.broadcast import REFUSAL_REASONS, WITHDRAWAL_REASONS, MsgType


class BroadcastMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.broadcasts = Counter(
            "referral_bus_broadcasts", "CAP messages published, by type (Alert, Update, Cancel).",
            ["message_type"], registry=registry)
        self.refusals = Counter(
            "referral_bus_broadcast_refusals", "Broadcast releases or cancels refused, by reason.",
            ["reason"], registry=registry)
        self.withdrawals = Counter(
            "referral_bus_broadcast_withdrawals",
            "Broadcasts (or releases not yet broadcast) withdrawn before the case was resolved, by reason.",
            ["reason"], registry=registry)
        self.inputs = Counter(
            "referral_bus_broadcast_inputs",
            "Inbound events the broadcast service read, by what each did: decided, refused, unchanged, "
            "not_a_case_event, or the boundary's reason for an invalid one (the router dead-letters those).",
            ["outcome"], registry=registry)
        self.internal_errors = Counter(
            "referral_bus_internal_errors",
            "Messages a per-message step could not handle because of an unexpected error (a bug), by step.",
            ["step"], registry=registry)
        self.active = Gauge(
            "referral_bus_broadcast_active_alerts", "Alerts sent and not cancelled.", registry=registry)
        # Every label value exists from the start, so a dashboard shows 0 rather than no data.
        for message_type in get_args(MsgType):
            self.broadcasts.labels(message_type)
        for reason in REFUSAL_REASONS:
            self.refusals.labels(reason)
        for reason in WITHDRAWAL_REASONS:
            self.withdrawals.labels(reason)
