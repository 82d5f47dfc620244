"""What the bus sends to an agency: a referral, one per (event, agency, rule)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.wire import Uuid5

#: Namespace of the deterministic referral ids: a replayed event yields the same ids.
REFERRAL_NAMESPACE = uuid.UUID("5b0f7c1e-2d4a-4e63-9a3f-7f3c2b1a0d11")

Role = Literal["lead", "cooperating"]


def referral_id_for(event_id: uuid.UUID, agency: str, rule_id: str, role: str) -> uuid.UUID:
    """Deterministic id: the same event routed again produces the same referral id."""
    return uuid.uuid5(REFERRAL_NAMESPACE, f"{event_id}|{agency}|{rule_id}|{role}")


def referral_id_suffix(agency: str, rule_id: str, role: str) -> str:
    """The part of a referral id's name that does not depend on the event (`referral_ids`)."""
    return f"{agency}|{rule_id}|{role}"


def referral_ids(event_id: uuid.UUID) -> Uuid5:
    """`referral_id_for` for the referrals of one event, the event's part hashed once:
    `referral_ids(event_id)(referral_id_suffix(agency, rule_id, role))`."""
    return Uuid5(REFERRAL_NAMESPACE, f"{event_id}|")


class Citation(BaseModel):
    """The plan clause a referral comes from, with a verbatim quote."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    clause: str
    quote: str


class Referral(BaseModel):
    """One agency's duty for one event: lead or cooperate, what to do, by when, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    referral_id: uuid.UUID
    event_id: uuid.UUID
    kind: str
    jurisdiction: str = Field(description="The event's jurisdiction.")
    decided_by: str = Field(description="The pack (jurisdiction) whose rule decided this referral.")
    agency: str
    role: Role
    action: str
    action_zh: str = Field(default="", description="The action in the plan's own words (Chinese), for consoles.")
    urgency: str
    reported_at: AwareDatetime
    ack_by: AwareDatetime | None = Field(description="When an acknowledgement is due.")
    due_by: AwareDatetime | None = Field(description="When the action is due, if the urgency sets a deadline.")
    rule_id: str
    citation: Citation
    constraints: tuple[str, ...] = ()
    exercise: bool = False
    expired_plan: bool = Field(default=False, description="Decided by a plan whose period has ended.")
    case_id: uuid.UUID | None = None
    subject: dict[str, Any] = Field(
        default_factory=dict, description="The event fields this agency needs to know, and no others.")

    @property
    def key(self) -> bytes:
        """Partition key: all referrals of one case (or event) stay in order."""
        return str(self.case_id or self.event_id).encode()


class DeadLetter(BaseModel):
    """An inbound message the bus could not accept, kept with the reason and the original bytes.

    Reasons and field errors never repeat what the sender wrote (field names the schema does not
    know and ids that are not UUIDs appear as `sha256:` digests). The original is kept whole up
    to 64 KiB, which holds any event the intake accepts and keeps the record under the
    producer's 1 MB limit; of a larger message only a prefix, its size and its sha256.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(description="Stable reason code: invalid_json, invalid_event, too_large, too_deep, "
                                    "invalid_string, empty_message, internal_error")
    errors: list[dict[str, str]] = Field(default_factory=list, description="[{field, reason}]")
    topic: str
    partition: int
    offset: int
    original_b64: str = Field(description="The message value exactly as received, base64; empty when it was "
                                          "larger than 64 KiB (then see original_prefix_b64).")
    received_at: dt.datetime
    event_id: str | None = Field(default=None, description="The event id when it is a UUID, else a sha256: "
                                                           "digest of what the message named.")
    original_prefix_b64: str | None = Field(default=None, description="The first 1 KiB of an oversize message.")
    original_size: int | None = Field(default=None, description="The message's size in bytes.")
    original_sha256: str | None = Field(default=None, description="sha256 of the whole message, hex.")
    reporter_agency: str | None = Field(default=None, description="The reporting agency the message named, "
                                                                  "when it is a known agency code.")
    service: str = Field(default="router", description="The service that refused it.")
