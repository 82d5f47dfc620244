"""What the bus tells an agency's own system about a message of its own that it refused.

An agency's own system writes events and answers on its own two topics (`agency.<code>.events`,
`agency.<code>.answers`); the intake's gate admits each or refuses it. The bus's record of a
refusal (a dead letter, a refused answer) is on a shared topic that only operators and the
console read, so the agency that wrote the message would never learn of it. It reads a
`RefusalNotice` on its own `agency.<code>.refusals` instead: where its message was, why it was
refused, which fields failed and why — the same codes as the HTTP API's 4xx answer to the same
JSON — and the ids it named. Ids, codes and times only: nothing it wrote is sent back.

The alerts service writes one there too when it refuses an answer the gate or the intake had
admitted (another desk answered first, the alert closed in between): the answer's position is
then on `answers.referrals`, and its `response_id` says which of the agency's answers it was.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.answers import ShownId
from schemas.receipts import RefusalField
from schemas.wire import Int, Message, Str, Timestamp

#: What was refused: an event (from `agency.<code>.events`) or an answer (`agency.<code>.answers`).
RefusedMessage = Literal["event", "answer"]


class RefusalNotice(Message):
    """A message an agency wrote on its own topic that the bus refused: where it was, why, and the
    ids it named. Keyed by that position (`<topic>:<partition>:<offset>`): a notice repeated after
    a restart of the intake has the same key and the same content but its times."""

    message: RefusedMessage = Field(description="What was refused: an event or an answer.")
    reason: Str = Field(description="Why, as a stable code: for an event a dead letter's reason "
                                    "(events.deadletter), for an answer a refused answer's (answers.refused). "
                                    "The same code the intake's HTTP API answers for the same JSON.")
    fields: tuple[RefusalField, ...] = Field(
        default=(), description="Each failing field and why (field names and fixed reasons, no values).")
    event_id: ShownId | None = Field(default=None, description="The refused event's event_id, or a sha256: digest "
                                                               "of what it named there.")
    response_id: ShownId | None = Field(default=None, description="The refused answer's response_id, or a sha256: "
                                                                  "digest.")
    referral_id: ShownId | None = Field(default=None, description="The alert or referral the refused answer named, "
                                                                  "or a sha256: digest.")
    topic: Str = Field(description="Where the message was read: the agency's own topic (the gate), or "
                                   "answers.referrals (an admitted answer the alerts service refused).")
    partition: Int
    offset: Int
    received_at: Timestamp = Field(description="When the bus read the message (not the sender's clock).")
    refused_at: Timestamp

    @property
    def key(self) -> bytes:
        """Keyed by where the refused message was: one key per refused message."""
        return f"{self.topic}:{self.partition}:{self.offset}".encode()
