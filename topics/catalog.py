"""The topic catalog: every topic the bus uses, declared once.

No service writes a topic name as a literal: it asks this module. Per-agency referral topic
names come from `referral_topic(agency)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rules.catalog import catalog

Key = Literal["event_id", "case_id", "referral_id", "alert_id", "agency"]
Cleanup = Literal["delete", "compact"]

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, what its messages are, how they are keyed, and how long they stay."""

    name: str
    value: str  # the model in schemas carried as the value
    key: Key
    partitions: int
    retention_ms: int
    cleanup: Cleanup = "delete"
    description: str = ""

    @property
    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup}


# Inbound: one topic for every reporting agency's events. Keyed by case id when known, else event
# id, so that everything about one case is routed in order by one worker.
EVENTS = TopicSpec("events.inbound", "Event", "case_id", 4, 30 * DAY_MS,
                   description="Events published by reporting agencies (validated by the router).")
DEAD_LETTERS = TopicSpec("events.deadletter", "DeadLetter", "event_id", 1, 90 * DAY_MS,
                         description="Inbound messages that could not be accepted, with the reason and original bytes.")
POLICE_ALERTS = TopicSpec("alerts.police", "PoliceAlert", "case_id", 4, 90 * DAY_MS,
                          description="Urgent alerts for police command centres (missing children).")
RESPONSES = TopicSpec("referrals.responses", "ReferralResponse", "referral_id", 4, 365 * DAY_MS,
                      description="Acknowledgements, acceptances, rejections and completions from agencies.")
# Answers the alerts service did not apply (not an answer, no agency, an unknown id, an agency
# the alert or referral was not addressed or escalated to, a final state): one `RefusedAnswer`
# each, ids and codes only, keyed like the answers. The duty console reads it to show an
# officer's refused answer on its card.
ANSWERS_REFUSED = TopicSpec("answers.refused", "RefusedAnswer", "referral_id", 1, 365 * DAY_MS,
                            description="Answers not applied, with the reason (ids and codes only).")
ESCALATIONS = TopicSpec("alerts.escalations", "Escalation", "referral_id", 4, 365 * DAY_MS,
                        description="Re-sends and escalations of unacknowledged alerts.")
RECEIPTS = TopicSpec("events.receipts", "Receipt", "event_id", 4, 365 * DAY_MS,
                     description="Per-event receipts for reporters: where the event was routed and why.")
AUDIT = TopicSpec("audit.trail", "AuditRecord", "event_id", 4, 5 * 365 * DAY_MS,
                  description="Who published, received and answered what, when (ids only).")
# The intake replicas' shared record of which agency each event id belongs to: a replica claims
# an id before it publishes the event, and the first claim in the log wins (all claims of one id
# are on one partition, in order); it also records each acceptance, so that every replica
# answers a repeated request with the original answer. Kept as long as receipts.
INTAKE_CLAIMS = TopicSpec("intake.claims", "EventClaim", "event_id", 4, 365 * DAY_MS,
                          description="Event ids claimed and accepted by intake replicas (first claim wins).")
CASES = TopicSpec("cases.changes", "CaseChange", "case_id", 4, 365 * DAY_MS, cleanup="compact",
                  description="Open/linked/closed changes of missing-child cases.")

BROADCAST_REFUSALS = TopicSpec("broadcast.refusals", "BroadcastRefusal", "case_id", 1, 365 * DAY_MS,
                               description="Broadcast releases or cancels refused, with the reason for the officer.")
BROADCAST_STATE = TopicSpec("broadcast.state", "CaseBroadcast", "case_id", 1, 365 * DAY_MS, cleanup="compact",
                            description="The broadcast service's per-case state (latest record per case).")

# The alerts service's state. Each is the changelog of one of its faust tables, declared here
# because the bus does not let faust declare topics (make_app: topic_allow_declare=False), and
# compacted so that the last message per key is the current value. CASES above is the changelog
# of the case table. ALERT_STATES doubles as the queryable state of every alert and referral.
ALERT_STATES = TopicSpec("alerts.states", "TrackedState", "referral_id", 4, 365 * DAY_MS, cleanup="compact",
                         description="Latest state of every tracked alert and referral (alerts service changelog).")
ALERT_PARKED = TopicSpec("alerts.parked", "ReferralResponse", "referral_id", 4, 30 * DAY_MS, cleanup="compact",
                         description="Answers that arrived before their referral (changelog of the alerts service).")
# Not part of the bus: the raw produce->consume baseline of benchmarks/alert_latency.py.
BENCHMARK_BASELINE = TopicSpec("bench.baseline", "bytes", "event_id", 4, DAY_MS,
                               description="Benchmark baseline traffic (created by the benchmark only).")

REFERRAL_PARTITIONS = 2
REFERRAL_RETENTION_MS = 365 * DAY_MS
BROADCAST_CHANNELS = ("media", "cyberspace", "outdoor_screens")


def referral_topic_name(agency: str) -> str:
    """`referrals.<agency_code>`: one topic per agency (dots in sub-unit codes are kept)."""
    return f"referrals.{agency}"


def referral_topic(agency: str) -> TopicSpec:
    if agency not in catalog().agencies:
        raise KeyError(f"unknown agency code {agency!r}")
    return TopicSpec(referral_topic_name(agency), "Referral", "case_id", REFERRAL_PARTITIONS,
                     REFERRAL_RETENTION_MS, description=f"Referrals for {agency}.")


def broadcast_topic(channel: str) -> TopicSpec:
    if channel not in BROADCAST_CHANNELS:
        raise KeyError(f"unknown broadcast channel {channel!r}")
    return TopicSpec(f"broadcast.{channel}", "CapMessage", "case_id", 1, 30 * DAY_MS,
                     description=f"CAP 1.2 missing-child broadcasts for {channel} channels.")


FIXED_TOPICS: tuple[TopicSpec, ...] = (
    EVENTS, DEAD_LETTERS, POLICE_ALERTS, RESPONSES, ANSWERS_REFUSED, ESCALATIONS, RECEIPTS, AUDIT, CASES,
    BROADCAST_REFUSALS, BROADCAST_STATE, INTAKE_CLAIMS,
)


def all_topics() -> tuple[TopicSpec, ...]:
    """Every topic the bus needs: fixed ones, one per agency (current agencies), one per channel."""
    agencies = sorted(code for code, a in catalog().agencies.items() if not a.abolished)
    return (
        *FIXED_TOPICS,
        *(referral_topic(a) for a in agencies),
        *(broadcast_topic(c) for c in BROADCAST_CHANNELS),
    )
