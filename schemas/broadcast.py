"""What the public-broadcast service keeps and publishes.

A missing child's broadcast (团圆 emergency release; 西安 第五条: TV, radio, outdoor screens) is a
CAP 1.2 alert with Updates as its search circle grows and a Cancel when the case is resolved.
These models are the service's durable per-case state (one record per case on a compacted topic),
the CAP messages it sent, and the refusals it publishes so a releasing officer sees why.

Only `PublicChild` fields ever reach a broadcast: it is an allowlist, so a field added to
`Person` or `Location` later stays private until someone adds it here on purpose.
"""

from __future__ import annotations

import uuid
from typing import Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MsgType = Literal["Alert", "Update", "Cancel"]
CapStatus = Literal["Actual", "Exercise"]

#: Why a release (or a cancel) was not broadcast. Stable codes: they are metric labels.
RefusalReason = Literal[
    "not_police",                 # only a police agency may release (团圆: parents cannot publish directly)
    "no_guardian_consent",        # the guardian has not agreed to the public release
    "case_closed",                # the case was resolved before the release arrived
    "no_last_seen_coordinates",   # no lat/lon for the last-seen location: no circle to draw
    "cancel_not_police",          # a case_resolved from a non-police publisher does not cancel
    "invalid_cap",                # the message failed the CAP 1.2 XSD: never published
    "exercise_mismatch",          # a drill release for a real alert: a drill never changes a real broadcast
]
REFUSAL_REASONS: tuple[str, ...] = get_args(RefusalReason)

#: Why a broadcast was withdrawn before its case was resolved. Stable codes: they are metric labels.
WithdrawalReason = Literal[
    "guardian_consent_withdrawn",  # a police release with guardian_consent false for a released case
]
WITHDRAWAL_REASONS: tuple[str, ...] = get_args(WithdrawalReason)

#: On the channel topics the value is the CAP XML itself; this header says so.
CAP_CONTENT_TYPE = "application/cap+xml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PublicChild(_Model):
    """The public set: what the police's urgent notice may say about a missing child.

    No ID number, no address, no free-text description (it often names the family), nothing
    about the reporter or the family. Coordinates are kept only to draw the CAP circle and are
    rounded before they are published.
    """

    name: str | None = None
    age: int | None = None
    sex: Literal["female", "male", "unknown"] | None = None
    distinguishing_features: str | None = None
    photo_url: str | None = None
    last_seen_at: AwareDatetime
    last_seen_place: str | None = None
    lat: float | None = None
    lon: float | None = None


class Release(_Model):
    """A police release request as the service keeps it (the officer's event id, for refusals)."""

    event_id: uuid.UUID
    agency: str
    public_contact: str
    exercise: bool = False


class CapMessage(_Model):
    """One CAP message the service sent for a case.

    On the broadcast topics the value is `xml` itself (content type `application/cap+xml`); this
    record is the service's own memory of it. `xml` and `headline` are dropped once the case is
    closed, so nothing about the child is kept or served after the Cancel.
    """

    identifier: str
    sender: str
    sent: str = Field(description="The CAP dateTime exactly as in the XML: references repeat it.")
    msg_type: MsgType
    status: CapStatus
    expires: AwareDatetime
    radius_km: int | None = None
    channels: tuple[str, ...] = Field(description="The broadcast channels it was published on.")
    headline: str | None = None
    xml: str | None = None

    @property
    def reference(self) -> str:
        """`sender,identifier,sent`: how CAP's <references> names an earlier message."""
        return f"{self.sender},{self.identifier},{self.sent}"


class CaseBroadcast(_Model):
    """The broadcast state of one case: the service's durable record (compacted, keyed by case)."""

    case_id: uuid.UUID
    child: PublicChild | None = Field(default=None, description="From the missing-child report.")
    release: Release | None = Field(
        default=None, description="The latest police release with consent; None again once consent is withdrawn.")
    releases: tuple[uuid.UUID, ...] = Field(
        default=(), description="Event ids of every police release applied (with or without consent): "
                                "a copy of one is dropped.")
    report_exercise: bool = False
    stage: int = Field(default=-1, description="Index in the radius schedule of the last circle sent.")
    messages: tuple[CapMessage, ...] = ()
    pending: tuple[str, ...] = Field(
        default=(), description="Outbox: identifiers recorded here but not yet confirmed on their channels.")
    closed: bool = Field(default=False, description="The case is resolved: nothing more is broadcast.")
    closed_at: AwareDatetime | None = None

    @property
    def exercise(self) -> bool:
        """A drill if either the report or the release is one: a drill is never broadcast as Actual."""
        return self.report_exercise or (self.release is not None and self.release.exercise)

    @property
    def active(self) -> bool:
        """An alert was sent and not cancelled (by the resolution, or by a withdrawal of consent)."""
        return bool(self.messages) and not self.closed and self.messages[-1].msg_type != "Cancel"

    @property
    def alert_messages(self) -> tuple[CapMessage, ...]:
        """The messages of the latest alert, from its Alert on (after a withdrawal and a new
        release, the case has a second alert; Updates and Cancels reference only their own)."""
        starts = [i for i, m in enumerate(self.messages) if m.msg_type == "Alert"]
        return self.messages[starts[-1]:] if starts else ()

    @property
    def recipients(self) -> tuple[str, ...]:
        """Every channel that received any message of the latest alert, in first-seen order."""
        seen: dict[str, None] = {}
        for m in self.alert_messages:
            seen.update(dict.fromkeys(m.channels))
        return tuple(seen)


class BroadcastRefusal(_Model):
    """A release or cancel the service did not broadcast, with the reason for the officer."""

    event_id: uuid.UUID
    case_id: uuid.UUID | None
    kind: str
    reason: RefusalReason
    detail: str
    reporter_agency: str | None
    exercise: bool = False
    refused_at: AwareDatetime

    @property
    def key(self) -> bytes:
        return str(self.case_id or self.event_id).encode()
