"""What the bus says about an answer it did not apply, and what an agency posts to answer.

An answer (`schemas.alerts.ReferralResponse`) reaches the alerts service on the answers topic,
written by the bus's own services: the intake (`POST /v1/referrals/{id}/answers`, with the
agency's token) and the duty console (its officers signed in). The alerts service applies it
only when its agency is one the alert or referral was addressed or escalated to
(`TrackedState.addressed_to()`); anything else is a `RefusedAnswer` on the refused-answers topic,
with one stable reason code, and never the text the sender wrote.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from schemas.alerts import ANSWER_NEEDS, Answer, answer_needs_schema, says_something
from schemas.events import AgencyCode
from schemas.receipts import RefusalField
from schemas.wire import UNSUPPORTED_VERSION, UUID_PATTERN, Bool, Int, Message, Str, Timestamp, Uuid

#: Why an answer was not applied (stable codes: metric labels, refusals, HTTP error codes).
RefusalReason = Literal[
    # the trust boundary (bus/boundary.py): not an answer at all
    "empty_message", "too_large", "invalid_json", "too_deep", "invalid_string", "invalid_answer",
    "unsupported_schema_version",
    # the answer is well formed, but nobody entitled gave it, or it cannot apply
    "no_agency", "unknown_id", "not_entitled", "already_final", "no_effect",
    # the intake's gate (an agency's own answers topic): the answer names another agency than the
    # topic's, or re-uses a response_id of another answer
    "agency_mismatch", "response_id_conflict",
    # a bug in the alerts service (the answer is kept on the answers topic for a replay)
    "internal_error",
]
REFUSAL_REASONS: tuple[RefusalReason, ...] = (
    "empty_message", "too_large", "invalid_json", "too_deep", "invalid_string", "invalid_answer",
    "unsupported_schema_version",
    "no_agency", "unknown_id", "not_entitled", "already_final", "no_effect", "agency_mismatch",
    "response_id_conflict", "internal_error",
)
#: What each reason means, for operators, the OpenAPI document and the console.
REFUSAL_MEANINGS: dict[str, str] = {
    "empty_message": "the message was empty",
    "too_large": "the message was too large",
    "invalid_json": "the message was not standard JSON",
    "too_deep": "the message was nested too deeply",
    "invalid_string": "a string held control or bidirectional characters, or was too long",
    "invalid_answer": "not an answer (an unknown answer, a rejection without a reason, 'done' without a note, "
                      "an id that is not a UUID, an unknown agency code)",
    UNSUPPORTED_VERSION: "the answer's schema_version has a major version the bus does not read",
    "no_agency": "the answer named no agency",
    "unknown_id": "no alert or referral with this id is known to the bus",
    "not_entitled": "the agency was not one the alert or referral was addressed or escalated to",
    "already_final": "the alert or referral was already done, rejected, closed or grouped",
    "no_effect": "the answer changes nothing in the current status (e.g. acknowledged after accepted)",
    "agency_mismatch": "the answer, written on an agency's own answers topic, named another agency (the topic "
                       "says who wrote it)",
    "response_id_conflict": "the response_id was already used for another answer",
    "internal_error": "an unexpected error in the alerts service or the intake's gate (a bug); the answer can be "
                      "sent again",
}


#: How a refusal shows an id the answer named: its UUID, or `sha256:` and 12 hex digits of
#: whatever else it wrote there (never the text itself).
SHOWN_ID_PATTERN = "^(" + UUID_PATTERN.strip("^$") + "|sha256:[0-9a-f]{12})$"
ShownId = Annotated[Str, Field(pattern=SHOWN_ID_PATTERN)]


class RefusedAnswer(Message):
    """An answer the alerts service did not apply, or the intake's gate did not admit from an
    agency's own answers topic: ids, codes and times only.

    `response_id` and `referral_id` are canonical UUIDs when the answer named valid ones, else a
    digest of what it named (`sha256:` + 12 hex), else null; `agency` and `answer` only when they
    are known codes. The sender's reason, note, officer and clock are never copied here.
    """

    response_id: ShownId | None = Field(description="The answer's response_id, or a sha256: digest of what it "
                                                    "named.")
    referral_id: ShownId | None = Field(description="The alert or referral it answered, or a sha256: digest.")
    agency: AgencyCode | None = Field(default=None, description="The agency it named, when a known code.")
    answer: Answer | None = Field(default=None, description="The answer it gave, when a known one.")
    reason: RefusalReason = Field(description="Why it was not applied (a stable code; REFUSAL_MEANINGS).")
    fields: tuple[RefusalField, ...] = Field(
        default=(), description="For an answer that is not one: each failing field and why (no values).")
    received_at: Timestamp = Field(description="When the bus received the answer (not the sender's clock).")
    refused_at: Timestamp
    exercise: Bool = False
    topic: Str | None = Field(default=None, description="Where the answer was read: topic, partition, offset.")
    partition: Int | None = None
    offset: Int | None = None

    @property
    def key(self) -> bytes:
        """Keyed like the answers topic, by the alert or referral it answered, as far as it named one."""
        return (self.referral_id or self.response_id or "-").encode()


class AnswerRequest(Message):
    """The body of `POST /v1/referrals/{id}/answers`: the agency is the token's, the id the path's.

    `response_id` makes a retry harmless (the same id again returns the first answer); a client
    that keeps answers in an outbox sets it once. `referral_id` and `agency`, when given, must be
    the path's and the token's (a console may post its `ReferralResponse` as it is).
    `responded_at` is recorded as the sender's claim only: the bus dates the answer itself.
    """

    model_config = ConfigDict(json_schema_extra=answer_needs_schema)

    response_id: Uuid = Field(default_factory=uuid.uuid4, description="A new UUID per answer (the same one "
                                                                      "when the same answer is sent again).")
    answer: Answer
    reason: Str | None = Field(default=None, max_length=1000, description="Required for `rejected`.")
    note: Str | None = Field(default=None, max_length=4000, description="Required for `done`.")
    officer: Str | None = Field(default=None, min_length=1, max_length=100,
                                description="The person answering for the agency.")
    exercise: Bool = False
    referral_id: Uuid | None = Field(default=None, description="If given, the id in the path.")
    agency: AgencyCode | None = Field(default=None, description="If given, the token's agency.")
    responded_at: Timestamp | None = Field(
        default=None, description="The sender's own time, recorded as claimed; never used for deadlines.")

    @model_validator(mode="after")
    def _reason_and_note(self) -> AnswerRequest:
        for answer, (field, message) in ANSWER_NEEDS.items():
            if self.answer == answer and not says_something(getattr(self, field)):
                raise ValueError(message)
        return self
