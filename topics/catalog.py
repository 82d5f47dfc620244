"""The topic catalog: every topic the bus uses, declared once.

No service writes a topic name as a literal: it asks this module. Per-agency referral topic
names come from `referral_topic(agency)`, and each agency's own way onto the bus over Kafka
(`gate_topics(agency)`: `agency.<code>.events` and `agency.<code>.answers`, which only that
agency's principal writes and the intake's gate reads and checks; `refusals_topic(agency)`: what
the gate refused of them, which only that agency reads). The published contract (schemas/asyncapi.yaml and
docs/topics.md, `referral-bus contract export`) is generated from here and from the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rules.catalog import catalog

Key = Literal["event_id", "case_id", "case_id_else_event_id", "referral_id", "event_id_else_position",
              "answered_id", "refused_position"]
Cleanup = Literal["delete", "compact"]
Participant = Literal["agency", "intake", "router", "alerts", "broadcast", "console", "desk", "operator",
                      "auditor", "channel"]

DAY_MS = 24 * 3600 * 1000

#: How each kind of key is made. A key is the UTF-8 text of a UUID as the message writes it
#: (lowercase, hyphenated, 36 bytes, no quotes); every producer places it with murmur2 — the Java
#: client's default partitioner, aiokafka's, and librdkafka's `murmur2_random` (not librdkafka's
#: default `consistent_random`, which puts most keys elsewhere and so breaks a case's order;
#: tests/integration/contract/test_outside_agency.py shows both).
KEYS: dict[Key, str] = {
    "event_id": "the message's event_id",
    "case_id": "the message's case_id",
    "case_id_else_event_id": "the message's case_id when it has one, else its event_id: every message "
                             "about one case is on one partition, in order",
    "referral_id": "the id of the alert or referral the message is about (referral_id; a tracked state's id)",
    "event_id_else_position": "the refused message's event_id when it could be read, else "
                              "`<topic>:<partition>:<offset>` of the refused message",
    "answered_id": "the id of the alert or referral the refused answer named (its UUID, or `sha256:` and 12 hex "
                   "digits of whatever else it wrote there), else its response_id in the same forms, else `-`",
    "refused_position": "`<topic>:<partition>:<offset>` of the refused message on the agency's own topic (its "
                        "topic, partition and offset fields): one key per refused message",
}
#: The fields each key rule reads, in order: the first one the message has is the key.
KEY_FIELDS: dict[Key, tuple[str, ...]] = {
    "event_id": ("event_id",),
    "case_id": ("case_id",),
    "case_id_else_event_id": ("case_id", "event_id"),
    "referral_id": ("referral_id", "id"),
    "event_id_else_position": ("event_id",),
    "answered_id": ("referral_id", "response_id"),
    "refused_position": ("topic", "partition", "offset"),
}


def key_of(key: Key, value: dict[str, object], position: str | None = None) -> bytes:
    """The key a message gets under a rule (`position`: `topic:partition:offset` of a refused one)."""
    if key == "refused_position":
        return ":".join(str(value[name]) for name in KEY_FIELDS[key]).encode()
    for name in KEY_FIELDS[key]:
        if value.get(name):
            return str(value[name]).encode()
    if key == "event_id_else_position" and position is not None:
        return position.encode()
    if key == "answered_id":
        return b"-"
    raise ValueError(f"a message keyed by {key} has none of {KEY_FIELDS[key]}")


#: How a producer places a key as the bus does: murmur2 of the key's bytes, made positive
#: (& 0x7fffffff), modulo the topic's partition count — Kafka's Java default. The settings each
#: client needs for it (none where it is already the default).
PARTITIONER: dict[str, dict[str, str]] = {
    "librdkafka": {"partitioner": "murmur2_random"},  # confluent-kafka (Python, Go, .NET), node-rdkafka, ...
    "java": {},  # the default partitioner, for keyed records
    "aiokafka": {},  # the default partitioner (the bus's own producers)
    "kafka-go": {"balancer": "kafka.Murmur2Balancer{}"},
}

#: Who takes part on the bus: every topic says which of them write and which read it.
PARTICIPANTS: dict[Participant, str] = {
    "agency": "an agency's own system with its own Kafka client (a hospital, a coach station, a police "
              "command centre) and its own principal `User:agency.<code>`: it writes events and answers on "
              "its own two topics (`agency.<code>.events`, `agency.<code>.answers`), which the intake's gate "
              "checks exactly as the HTTP API checks the same JSON with the agency's token, and reads its "
              "own referrals (police units and the joint office also the police alerts, escalations and "
              "cases). Or it uses the intake's HTTP API with its token instead; never `events.inbound` or "
              "`answers.referrals` directly",
    "intake": "the HTTP intake (referral-bus intake): publishes each authenticated agency's event as sent, "
              "and its gate admits what agencies write on their own topics (refused: a dead letter or a "
              "refused answer)",
    "router": "the router (referral-bus router): validates, routes, alerts, receipts",
    "alerts": "the alerts service (referral-bus alerts): tracks answers, re-sends, escalates, keeps cases",
    "broadcast": "the broadcast service (referral-bus broadcast): CAP missing-child broadcasts",
    "console": "the duty console (referral-bus console): desks' boards, and the answers and case "
               "resolutions of the officers it signs in",
    "desk": "the bus's terminal tools at an agency's desk (tail, page, cases; ack, accept, reject and done "
            "answer through the intake with the agency's token)",
    "operator": "operators' tools: deadletters, replay, the annual report",
    "auditor": "auditors reading who knew what, when",
    "channel": "a broadcast channel's own system (media, cyberspace, outdoor screens)",
}


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, what its messages are, how they are keyed, how long they stay, and
    who writes and reads it."""

    name: str
    value: str  # the model in schemas carried as the value
    key: Key
    partitions: int
    retention_ms: int
    cleanup: Cleanup = "delete"
    description: str = ""
    writers: tuple[Participant, ...] = ()
    readers: tuple[Participant, ...] = ()

    @property
    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup}


# Inbound: one topic for every reporting agency's events. Keyed by case id when known, else event
# id, so that everything about one case is routed in order by one worker.
EVENTS = TopicSpec("events.inbound", "Event", "case_id_else_event_id", 4, 30 * DAY_MS,
                   description="Events published by reporting agencies (validated by the router).",
                   writers=("intake", "operator", "console"), readers=("router", "alerts", "broadcast"))
DEAD_LETTERS = TopicSpec("events.deadletter", "DeadLetter", "event_id_else_position", 1, 90 * DAY_MS,
                         description="Inbound messages that could not be accepted, with the reason and original bytes.",
                         writers=("router", "broadcast", "intake"), readers=("operator",))
POLICE_ALERTS = TopicSpec("alerts.police", "PoliceAlert", "case_id", 4, 90 * DAY_MS,
                          description="Urgent alerts for police command centres (missing children).",
                          writers=("router", "alerts"), readers=("alerts", "operator", "agency"))
# Answers are not referrals: their topic is outside `referrals.` (issue #18), so that nothing
# reading or granting `referrals.*` takes them for an agency's referrals. Until every reader has
# moved, an upgrade reads both (deploy/README.md, "Upgrading"). The bus's own services write
# them: the intake for an agency that answers with its token (its own system, or the terminal's
# `referral-bus ack|accept|reject|done`) and the duty console for its signed-in officers; the
# alerts service applies only those of an agency the alert or referral was addressed or
# escalated to (issue #17).
ANSWERS = TopicSpec("answers.referrals", "ReferralResponse", "referral_id", 4, 365 * DAY_MS,
                    description="Acknowledgements, acceptances, rejections and completions from agencies.",
                    writers=("intake", "console"), readers=("alerts",))
#: The answers topic's name before issue #18, read during an upgrade only.
LEGACY_ANSWERS_TOPIC = "referrals.responses"
#: The old name of ANSWERS, kept so that code written against it still imports.
RESPONSES = ANSWERS
# Answers the alerts service did not apply (not an answer, no agency, an unknown id, an agency
# the alert or referral was not addressed or escalated to, a final state), and answers the
# intake's gate refused on an agency's own answers topic: one `RefusedAnswer` each, ids and
# codes only, keyed like the answers. The duty console reads it to show an
# officer's refused answer on its card.
ANSWERS_REFUSED = TopicSpec("answers.refused", "RefusedAnswer", "answered_id", 1, 365 * DAY_MS,
                            description="Answers the alerts service did not apply, or the intake's gate did not "
                                        "admit from an agency's own answers topic, with the reason (ids and codes "
                                        "only).",
                            writers=("alerts", "intake"), readers=("console",))
ESCALATIONS = TopicSpec("alerts.escalations", "Escalation", "referral_id", 4, 365 * DAY_MS,
                        description="Re-sends and escalations of unacknowledged alerts (police units and the joint "
                                    "offices they reach read them; target_agency says whom each is for).",
                        writers=("alerts",), readers=("alerts", "operator", "agency"))
RECEIPTS = TopicSpec("events.receipts", "Receipt", "event_id", 4, 365 * DAY_MS,
                     description="Per-event receipts for reporters: where the event was routed and why.",
                     writers=("router",), readers=("intake",))
AUDIT = TopicSpec("audit.trail", "AuditRecord", "event_id", 4, 5 * 365 * DAY_MS,
                  description="Who published, received and answered what, when (ids only).",
                  writers=("intake", "router", "desk", "operator", "console"), readers=("auditor",))
# The intake replicas' shared record of which agency each event id belongs to: a replica claims
# an id before it publishes the event, and the first claim in the log wins (all claims of one id
# are on one partition, in order); it also records each acceptance, so that every replica
# answers a repeated request with the original answer. Kept as long as receipts.
INTAKE_CLAIMS = TopicSpec("intake.claims", "EventClaim", "event_id", 4, 365 * DAY_MS,
                          description="Event ids claimed and accepted by intake replicas (first claim wins).",
                          writers=("intake",), readers=("intake",))
CASES = TopicSpec("cases.changes", "CaseChange", "case_id", 4, 365 * DAY_MS, cleanup="compact",
                  description="Open/linked/closed changes of missing-child cases (read by the police units that own "
                              "them, owner).",
                  writers=("alerts",), readers=("alerts", "desk", "console", "operator", "agency"))

BROADCAST_REFUSALS = TopicSpec("broadcast.refusals", "BroadcastRefusal", "case_id_else_event_id", 1, 365 * DAY_MS,
                               description="Broadcast releases or cancels refused, with the reason for the "
                                           "releasing police officer (reporter_agency).",
                               writers=("broadcast",), readers=("agency",))
BROADCAST_STATE = TopicSpec("broadcast.state", "CaseBroadcast", "case_id", 1, 365 * DAY_MS, cleanup="compact",
                            description="The broadcast service's per-case state (latest record per case).",
                            writers=("broadcast",), readers=("broadcast", "console"))

# The alerts service's state. Each is the changelog of one of its faust tables, declared here
# because the bus does not let faust declare topics (make_app: topic_allow_declare=False), and
# compacted so that the last message per key is the current value. CASES above is the changelog
# of the case table. ALERT_STATES doubles as the queryable state of every alert and referral.
ALERT_STATES = TopicSpec("alerts.states", "TrackedState", "referral_id", 4, 365 * DAY_MS, cleanup="compact",
                         description="Latest state of every tracked alert and referral (alerts service changelog).",
                         writers=("alerts",), readers=("alerts", "console", "desk", "operator", "intake"))
ALERT_PARKED = TopicSpec("alerts.parked", "ParkedAnswers", "referral_id", 4, 30 * DAY_MS, cleanup="compact",
                         description="Answers that arrived before their referral (changelog of the alerts service).",
                         writers=("alerts",), readers=("alerts",))
# Not part of the bus: the raw produce->consume baseline of benchmarks/alert_latency.py.
BENCHMARK_BASELINE = TopicSpec("bench.baseline", "bytes", "event_id", 4, DAY_MS,
                               description="Benchmark baseline traffic (created by the benchmark only).")

REFERRAL_PARTITIONS = 2
REFERRAL_RETENTION_MS = 365 * DAY_MS
BROADCAST_CHANNELS = ("media", "cyberspace", "outdoor_screens")
#: The value of the broadcast channels: a CAP 1.2 XML document, not JSON (content-type header
#: `application/cap+xml`); its schema is OASIS's XSD.
CAP_XML = "CapAlertXml"


def referral_topic_name(agency: str) -> str:
    """`referrals.<agency_code>`: one topic per agency (dots in sub-unit codes are kept)."""
    return f"referrals.{agency}"


def referral_topic(agency: str) -> TopicSpec:
    if agency not in catalog().agencies:
        raise KeyError(f"unknown agency code {agency!r}")
    return TopicSpec(referral_topic_name(agency), "Referral", "case_id_else_event_id", REFERRAL_PARTITIONS,
                     REFERRAL_RETENTION_MS, description=f"Referrals for {agency}.",
                     writers=("router", "alerts"), readers=("agency", "desk", "intake", "alerts", "operator"))


# An agency's own system on Kafka (issue #18): a Kafka record carries no proof of who wrote it,
# so an agency does not write `events.inbound` or `answers.referrals`, where `reporter.agency` and
# `agency` are fields like any other. It writes two topics of its own, which only its principal
# `User:agency.<code>` may write: the topic, not the field, says who wrote a message. The intake's
# gate (services/intake/gate.py) reads them and admits each message exactly as the HTTP API
# admits the same body with that agency's token, onto `events.inbound` / `answers.referrals`;
# it refuses the rest with a reason (`events.deadletter`, `answers.refused`), and tells the agency
# why on a third topic of its own, `agency.<code>.refusals`, which only its principal reads (the
# alerts service tells it there too of an answer it could not apply). One
# partition: an agency's messages are admitted in the order it wrote them.
GATE_PARTITIONS = 1
GATE_RETENTION_MS = 30 * DAY_MS


def gate_events_topic_name(agency: str) -> str:
    """`agency.<agency_code>.events`: the events one agency's own system writes."""
    return f"agency.{agency}.events"


def gate_answers_topic_name(agency: str) -> str:
    """`agency.<agency_code>.answers`: the answers one agency's own system writes."""
    return f"agency.{agency}.answers"


def gate_topics(agency: str) -> tuple[TopicSpec, TopicSpec]:
    """The agency's two gate topics: (events, answers)."""
    if agency not in catalog().agencies:
        raise KeyError(f"unknown agency code {agency!r}")
    return (
        TopicSpec(gate_events_topic_name(agency), "Event", "case_id_else_event_id", GATE_PARTITIONS,
                  GATE_RETENTION_MS,
                  description=f"Events {agency}'s own system publishes (its reporter.agency must be {agency}); "
                              "the intake's gate admits them to events.inbound.",
                  writers=("agency",), readers=("intake",)),
        TopicSpec(gate_answers_topic_name(agency), "ReferralResponse", "referral_id", GATE_PARTITIONS,
                  GATE_RETENTION_MS,
                  description=f"Answers {agency}'s own system gives (its agency must be {agency}); the intake's "
                              "gate admits them to answers.referrals.",
                  writers=("agency",), readers=("intake",)),
    )


def refusals_topic_name(agency: str) -> str:
    """`agency.<agency_code>.refusals`: what the gate refused of what one agency's own system wrote."""
    return f"agency.{agency}.refusals"


def refusals_topic(agency: str) -> TopicSpec:
    """The agency's refusal notices, which only that agency reads (the shared records,
    `events.deadletter` and `answers.refused`, are for operators and the console, and hold other
    agencies' refusals): a `RefusalNotice` for each message of its own two gate topics the gate
    refused, and for each of its answers the alerts service refused when it came to apply it."""
    if agency not in catalog().agencies:
        raise KeyError(f"unknown agency code {agency!r}")
    return TopicSpec(refusals_topic_name(agency), "RefusalNotice", "refused_position", GATE_PARTITIONS,
                     GATE_RETENTION_MS,
                     description=f"Why the bus refused an event or answer of {agency}'s: the intake's gate, what "
                                 f"its own system wrote on its own topics; the alerts service, an answer it could "
                                 f"not apply (ids, codes and field names only; read by {agency} alone).",
                     writers=("intake", "alerts"), readers=("agency",))


def gate_agency(topic: str) -> str | None:
    """The agency whose gate topic this is (None: not a gate topic of a current agency)."""
    for suffix in (".events", ".answers"):
        if topic.startswith("agency.") and topic.endswith(suffix):
            code = topic[len("agency."):-len(suffix)]
            agency = catalog().agencies.get(code)
            return code if agency is not None and not agency.abolished else None
    return None


def current_agencies() -> list[str]:
    """Every current (not abolished) agency code, sorted."""
    return sorted(code for code, a in catalog().agencies.items() if not a.abolished)


def broadcast_topic(channel: str) -> TopicSpec:
    if channel not in BROADCAST_CHANNELS:
        raise KeyError(f"unknown broadcast channel {channel!r}")
    return TopicSpec(f"broadcast.{channel}", CAP_XML, "case_id", 1, 30 * DAY_MS,
                     description=f"CAP 1.2 missing-child broadcasts for {channel} channels.",
                     writers=("broadcast",), readers=("channel",))


#: Every topic of fixed name the bus needs, the alerts service's changelogs included (a broker
#: with auto-creation off, like the Compose Kafka, has only what `topics create` made).
FIXED_TOPICS: tuple[TopicSpec, ...] = (
    EVENTS, DEAD_LETTERS, POLICE_ALERTS, ANSWERS, ANSWERS_REFUSED, ESCALATIONS, RECEIPTS, AUDIT, CASES,
    BROADCAST_REFUSALS, BROADCAST_STATE, ALERT_STATES, ALERT_PARKED, INTAKE_CLAIMS,
)


def all_topics() -> tuple[TopicSpec, ...]:
    """Every topic the bus needs: fixed ones, four per agency (current agencies: its referrals, its
    two gate topics and its refusal notices), one per channel."""
    agencies = current_agencies()
    return (
        *FIXED_TOPICS,
        *(referral_topic(a) for a in agencies),
        *(t for a in agencies for t in gate_topics(a)),
        *(refusals_topic(a) for a in agencies),
        *(broadcast_topic(c) for c in BROADCAST_CHANNELS),
    )


def spec_of(topic: str) -> TopicSpec:
    """The catalog's declaration of a topic, by name."""
    for spec in all_topics():
        if spec.name == topic:
            return spec
    raise KeyError(f"unknown topic {topic!r}")
