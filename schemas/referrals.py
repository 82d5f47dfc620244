"""What the bus sends to an agency: a referral, one per (event, agency, rule)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import Field

from schemas.encoding import Uuid5
from schemas.wire import Bool, Int, Message, Str, Timestamp, Uuid, WireModel

#: Namespace of the deterministic referral ids: a replayed event yields the same ids.
REFERRAL_NAMESPACE = uuid.UUID("5b0f7c1e-2d4a-4e63-9a3f-7f3c2b1a0d11")

Role = Literal["lead", "cooperating"]


def referral_id_for(event_id: uuid.UUID, agency: str, rule_id: str, role: str) -> uuid.UUID:
    """Deterministic id: the same event routed again produces the same referral id."""
    return uuid.uuid5(REFERRAL_NAMESPACE, f"{event_id}|{agency}|{rule_id}|{role}")


def referral_id_suffix(agency: str, rule_id: str, role: str) -> str:
    """The part of a referral id's name that does not depend on the event (`referral_ids`)."""
    return f"{agency}|{rule_id}|{role}"


def referral_ids(event_id: uuid.UUID | str | bytes) -> Uuid5:
    """`referral_id_for` for the referrals of one event, the event's part hashed once:
    `referral_ids(event_id)(referral_id_suffix(agency, rule_id, role))`. The event id as a UUID,
    or its text (`str(event_id)`), or that text as UTF-8."""
    return _REFERRAL_IDS.after(event_id + b"|" if isinstance(event_id, bytes) else f"{event_id}|")


_REFERRAL_IDS = Uuid5(REFERRAL_NAMESPACE, "")


class Citation(WireModel):
    """The plan clause a referral comes from, with a verbatim quote."""

    file: Str
    clause: Str
    quote: Str


class Referral(Message):
    """One agency's duty for one event: lead or cooperate, what to do, by when, and why."""

    referral_id: Uuid
    event_id: Uuid
    kind: Str
    jurisdiction: Str = Field(description="The event's jurisdiction.")
    decided_by: Str = Field(description="The pack (jurisdiction) whose rule decided this referral.")
    agency: Str
    role: Role
    action: Str
    action_zh: Str = Field(default="", description="The action in the plan's own words (Chinese), for consoles.")
    urgency: Str
    reported_at: Timestamp
    ack_by: Timestamp | None = Field(description="When an acknowledgement is due.")
    due_by: Timestamp | None = Field(description="When the action is due, if the urgency sets a deadline.")
    rule_id: Str
    citation: Citation
    constraints: tuple[Str, ...] = ()
    exercise: Bool = False
    expired_plan: Bool = Field(default=False, description="Decided by a plan whose period has ended.")
    case_id: Uuid | None = None
    subject: dict[str, Any] = Field(
        default_factory=dict, description="The event fields this agency needs to know, and no others.")

    @property
    def key(self) -> bytes:
        """Partition key: all referrals of one case (or event) stay in order."""
        return str(self.case_id or self.event_id).encode()


class DeadLetter(Message):
    """An inbound message the bus could not accept, kept with the reason and the original bytes.

    Reasons and field errors never repeat what the sender wrote (field names the schema does not
    know and ids that are not UUIDs appear as `sha256:` digests). The original is kept whole up
    to 64 KiB, which holds any event the intake accepts and keeps the record under the
    producer's 1 MB limit; of a larger message only a prefix, its size and its sha256.
    """

    reason: Str = Field(description="Stable reason code: invalid_json, invalid_event, unsupported_schema_version, "
                                    "too_large, too_deep, invalid_string, empty_message, internal_error; and from "
                                    "the intake's gate (an agency's own events topic): agency_mismatch "
                                    "(reporter.agency is not the topic's agency), kind_not_permitted, "
                                    "event_id_conflict (another agency's event id, or the same id for another "
                                    "event)")
    errors: list[dict[Str, Str]] = Field(default_factory=list, description="[{field, reason}]")
    topic: Str
    partition: Int
    offset: Int
    original_b64: Str = Field(description="The message value exactly as received, base64; empty when it was "
                                          "larger than 64 KiB (then see original_prefix_b64).")
    received_at: Timestamp
    event_id: Str | None = Field(default=None, description="The event id when it is a UUID, else a sha256: "
                                                           "digest of what the message named.")
    original_prefix_b64: Str | None = Field(default=None, description="The first 1 KiB of an oversize message.")
    original_size: Int | None = Field(default=None, description="The message's size in bytes.")
    original_sha256: Str | None = Field(default=None, description="sha256 of the whole message, hex.")
    reporter_agency: Str | None = Field(default=None, description="The reporting agency the message named, "
                                                                  "when it is a known agency code.")
    service: Str = Field(default="router", description="The service that refused it (router, broadcast, intake).")
