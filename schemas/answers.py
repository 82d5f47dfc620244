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
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.alerts import AgencyCode, Answer
from schemas.errors import FieldError

#: Why an answer was not applied (stable codes: metric labels, refusals, HTTP error codes).
RefusalReason = Literal[
    # the trust boundary (bus/boundary.py): not an answer at all
    "empty_message", "too_large", "invalid_json", "too_deep", "invalid_string", "invalid_answer",
    # the answer is well formed, but nobody entitled gave it, or it cannot apply
    "no_agency", "unknown_id", "not_entitled", "already_final", "no_effect",
    # a bug in the alerts service (the answer is kept on the answers topic for a replay)
    "internal_error",
]
REFUSAL_REASONS: tuple[RefusalReason, ...] = (
    "empty_message", "too_large", "invalid_json", "too_deep", "invalid_string", "invalid_answer",
    "no_agency", "unknown_id", "not_entitled", "already_final", "no_effect", "internal_error",
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
    "no_agency": "the answer named no agency",
    "unknown_id": "no alert or referral with this id is known to the bus",
    "not_entitled": "the agency was not one the alert or referral was addressed or escalated to",
    "already_final": "the alert or referral was already done, rejected, closed or grouped",
    "no_effect": "the answer changes nothing in the current status (e.g. acknowledged after accepted)",
    "internal_error": "an unexpected error in the alerts service (a bug); the answer can be sent again",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RefusedAnswer(_Frozen):
    """An answer the alerts service did not apply: ids, codes and times only.

    `response_id` and `referral_id` are canonical UUIDs when the answer named valid ones, else a
    digest of what it named (`sha256:` + 12 hex), else null; `agency` and `answer` only when they
    are known codes. The sender's reason, note, officer and clock are never copied here.
    """

    response_id: str | None = Field(description="The answer's response_id, or a sha256: digest of what it named.")
    referral_id: str | None = Field(description="The alert or referral it answered, or a sha256: digest.")
    agency: AgencyCode | None = Field(default=None, description="The agency it named, when a known code.")
    answer: Answer | None = Field(default=None, description="The answer it gave, when a known one.")
    reason: RefusalReason
    fields: tuple[FieldError, ...] = Field(
        default=(), description="For an answer that is not one: each failing field and why (no values).")
    received_at: AwareDatetime = Field(description="When the bus received the answer (not the sender's clock).")
    refused_at: AwareDatetime
    exercise: bool = False
    topic: str | None = Field(default=None, description="Where the answer was read: topic, partition, offset.")
    partition: int | None = None
    offset: int | None = None

    @property
    def key(self) -> bytes:
        """Keyed like the answers topic: by the referral or alert it answered."""
        return (self.referral_id or self.response_id or "-").encode()


class AnswerRequest(_Frozen):
    """The body of `POST /v1/referrals/{id}/answers`: the agency is the token's, the id the path's.

    `response_id` makes a retry harmless (the same id again returns the first answer); a client
    that keeps answers in an outbox sets it once. `referral_id` and `agency`, when given, must be
    the path's and the token's (a console may post its `ReferralResponse` as it is).
    `responded_at` is recorded as the sender's claim only: the bus dates the answer itself.
    """

    response_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    answer: Answer
    reason: str | None = Field(default=None, max_length=1000, description="Required for `rejected`.")
    note: str | None = Field(default=None, max_length=4000, description="Required for `done`.")
    officer: str | None = Field(default=None, min_length=1, max_length=100,
                                description="The person answering for the agency.")
    exercise: bool = False
    referral_id: uuid.UUID | None = Field(default=None, description="If given, the id in the path.")
    agency: AgencyCode | None = Field(default=None, description="If given, the token's agency.")
    responded_at: AwareDatetime | None = Field(
        default=None, description="The sender's own time, recorded as claimed; never used for deadlines.")

    @model_validator(mode="after")
    def _reason_and_note(self) -> AnswerRequest:
        if self.answer == "rejected" and not (self.reason or "").strip():
            raise ValueError("a rejection needs a reason")
        if self.answer == "done" and not (self.note or "").strip():
            raise ValueError("'done' needs a note")
        return self
