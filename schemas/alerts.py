"""Urgent police alerts, agencies' answers, escalations, tracked states and missing-child cases.

Ids are deterministic wherever a copy may be produced again after a crash (at-least-once
delivery on the local broker): an alert's id comes from its report's `event_id`, an escalation's
from the alert and its step. Receivers drop copies by these ids.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from schemas.cases import report_case
from schemas.encoding import built
from schemas.events import AgencyCode, Event, MissingChildReport
from schemas.referrals import Citation, Referral
from schemas.wire import NOT_BLANK_PATTERN, Bool, Int, Message, Str, Timestamp, Uuid, WireModel, python_regex

#: Namespace of alert and escalation ids (a replayed report yields the same ids).
ALERT_NAMESPACE = uuid.UUID("0c7b3d52-8a41-4f0e-b7d6-2e9a5c1f3b84")

Answer = Literal["acknowledged", "accepted", "rejected", "done"]
ANSWERS: tuple[Answer, ...] = ("acknowledged", "accepted", "rejected", "done")




def alert_id_for(event_id: uuid.UUID) -> uuid.UUID:
    """The alert of one missing-child report: the same report routed twice gives the same id."""
    return uuid.uuid5(ALERT_NAMESPACE, f"alert|{event_id}")


def escalation_id_for(tracked_id: uuid.UUID, step: int | str) -> uuid.UUID:
    """One id per step of one alert's ladder (or `reassign`), whoever decides it and how often."""
    return uuid.uuid5(ALERT_NAMESPACE, f"escalation|{tracked_id}|{step}")


#: The case a missing-child report opens or joins (`schemas.cases`, the one rule); kept under this
#: name for the modules that import it from here.
case_id_of = report_case


class _Frozen(WireModel):
    """A part of a message (closed, immutable, strict)."""


class ChildDescriptors(_Frozen):
    """What clue matching compares (age, sex, place, time); police need-to-know, never logged."""

    age: Int | None = None
    sex: Str | None = None
    place: Str | None = None
    last_seen_at: Timestamp | None = None


_DESCRIPTORS = frozenset(ChildDescriptors.model_fields)


def descriptors_of(event: Event) -> ChildDescriptors:
    """What clue matching compares of an event: age, sex, last-seen place and time (for a clue,
    where and when it was seen)."""
    # Values of a validated event, of the fields' own types: not validated again.
    return built(ChildDescriptors, descriptor_values(event), set(_DESCRIPTORS))


def descriptor_values(event: Event) -> dict[str, Any]:
    """The fields of `descriptors_of(event)`, in the model's order (`to_json` of them writes
    what the model writes)."""
    person = event.person
    if isinstance(event, MissingChildReport):
        place, seen_at = event.last_seen_location.place, event.last_seen_at
    else:
        place, seen_at = event.location.place if event.location else None, event.occurred_at
    return {"age": person.age if person else None, "sex": person.sex if person else None,
            "place": place, "last_seen_at": seen_at}



class PoliceAlert(Message):
    """An urgent alert for a jurisdiction's police command centre (儿童失踪快速查找机制).

    `attempt` is 1 for the alert raised by the router and 2, 3 ... for re-sends: a re-sent alert
    keeps its `alert_id`, so receivers drop copies by `delivery_id` and still see a re-send.
    """

    alert_id: Uuid
    case_id: Uuid
    event_id: Uuid
    jurisdiction: Str
    agency: AgencyCode
    urgency: Str
    action: Str
    action_zh: Str = Field(default="", description="The action in the plan's own words (Chinese), for consoles.")
    raised_at: Timestamp = Field(description="The report's reported_at: the deadline counts from it.")
    ack_deadline: Timestamp | None
    attempt: Int = Field(default=1, ge=1)
    exercise: Bool = False
    lead_referral_id: Uuid | None = Field(
        default=None, description="The command centre's lead referral: answering either answers both.")
    referral_ids: tuple[Uuid, ...] = Field(
        default=(), description="Interception notices and cooperating referrals raised with the alert.")
    rule_id: Str | None = None
    citation: Citation | None = None
    descriptors: ChildDescriptors = ChildDescriptors()
    subject: dict[Str, Any] = Field(
        default_factory=dict, description="The report's fields the command centre needs to know (its lead "
                                          "referral's `subject`): what its duty officer is shown of the child.")

    @property
    def key(self) -> bytes:
        return str(self.case_id).encode()

    @property
    def delivery_id(self) -> str:
        """What a receiver deduplicates on: one page per alert and attempt."""
        return f"{self.alert_id}#{self.attempt}"


#: The answers that must say something, the field that says it, and the refusal when it does not:
#: a text with a character other than a space, a tab or a line break.
ANSWER_NEEDS: dict[str, tuple[str, str]] = {
    "rejected": ("reason", "a rejection needs a reason"),
    "done": ("note", "'done' needs a note"),
}
_NOT_BLANK = python_regex(NOT_BLANK_PATTERN)


def says_something(text: str | None) -> bool:
    """Whether an answer's reason or note has a character other than a space, a tab or a line break."""
    return text is not None and _NOT_BLANK.search(text) is not None


def answer_needs_schema(schema: dict[str, Any]) -> None:
    """The JSON Schema's statement of ANSWER_NEEDS."""
    schema["allOf"] = [
        {"if": {"properties": {"answer": {"const": answer}}, "required": ["answer"]},
         "then": {"required": [field], "properties": {field: {"type": "string", "pattern": NOT_BLANK_PATTERN}}}}
        for answer, (field, _) in ANSWER_NEEDS.items()
    ]


class ReferralResponse(Message):
    """An agency's answer to a referral or alert; `response_id` makes a re-sent answer harmless."""

    model_config = ConfigDict(json_schema_extra=answer_needs_schema)

    response_id: Uuid = Field(default_factory=uuid.uuid4)
    referral_id: Uuid = Field(description="A referral id or an alert id.")
    answer: Answer
    agency: AgencyCode | None = Field(default=None, description="Who answers (None: not given).")
    reason: Str | None = Field(default=None, max_length=1000)
    note: Str | None = Field(default=None, max_length=4000)
    responded_at: Timestamp = Field(
        default_factory=lambda: dt.datetime.now(dt.UTC),
        description="The sender's own clock, recorded as claimed (`HistoryEntry.claimed_at`); the bus dates an "
                    "answer by when it received it, never by this.")
    exercise: Bool = False
    officer: Str | None = Field(
        default=None, min_length=1, max_length=100,
        description="Who answered: the person (officer, desk) of the agency, as the console signed them in.")

    @model_validator(mode="after")
    def _reason_and_note(self) -> ReferralResponse:
        for answer, (field, message) in ANSWER_NEEDS.items():
            if self.answer == answer and not says_something(getattr(self, field)):
                raise ValueError(message)
        return self

    @property
    def key(self) -> bytes:
        return str(self.referral_id).encode()


class ParkedAnswer(_Frozen):
    """An answer the alerts service keeps until its alert or referral arrives (`alerts.parked`):
    topics are not ordered against each other. `received_at` is when the bus received it (its
    time once applied); `parked_at` starts its parking window; `for_twin` marks an answer already
    applied to an alert (or lead referral) that waits for the other of the pair."""

    response: ReferralResponse
    received_at: Timestamp = Field(description="When the bus received the answer (its time once applied).")
    parked_at: Timestamp = Field(description="When its parking window started.")
    for_twin: Bool = Field(default=False, description="Already applied to an alert (or lead referral); waits "
                                                      "for the other of the pair.")


class ParkedAnswers(RootModel[tuple[ParkedAnswer, ...]]):
    """Answers that arrived before their alert or referral, kept by the alerts service under the
    answered id until it arrives, each with the time the bus received it (each answer carries its
    own schema_version). A value written before the bus dated answers itself, a JSON array of bare
    answers, is still read: each is dated when it is restored."""

    model_config = ConfigDict(frozen=True)


EscalationAction = Literal["resend", "escalate", "reassign"]


class Escalation(Message):
    """A re-send, an escalation to the next level, or a re-assignment after a lead's rejection.

    Level 0 is the original receiver (a re-send), 1 the jurisdiction's joint-conference office,
    2 and up the command centres of the parent jurisdictions, nearest first.
    """

    escalation_id: Uuid
    referral_id: Uuid = Field(description="The alert or referral this is about.")
    case_id: Uuid | None
    action: EscalationAction
    step: Int = Field(ge=0)
    level: Int = Field(ge=0)
    target_agency: AgencyCode
    target_jurisdiction: Str
    reason: Str
    decided_at: Timestamp
    ack_deadline: Timestamp | None
    exercise: Bool = False
    alert: PoliceAlert | None = None
    event_id: Uuid | None = Field(
        default=None, description="The event the alert or referral came from (ids and times only, like the rest).")
    raised_at: Timestamp | None = Field(
        default=None, description="When the alert or referral was raised: tells a duty raised after its case "
                                  "was resolved from one the resolution ended.")

    @property
    def key(self) -> bytes:
        return str(self.referral_id).encode()


TrackedStatus = Literal[
    "sent", "acknowledged", "accepted", "rejected", "done", "grouped", "closed",
]
#: States an answer can no longer change (the alerts service decides by them; readers show them).
FINAL_STATUSES: frozenset[str] = frozenset({"done", "rejected", "closed", "grouped"})
_ORDER = {"sent": 0, "acknowledged": 1, "accepted": 2}


def next_status(current: str, answer: str) -> str | None:
    """The status an answer moves an alert or referral to from `current` (not final), or None when
    it changes nothing there: sent → acknowledged → accepted → done; sent/acknowledged →
    rejected. The one rule the alerts service applies answers by, the intake and the console
    offer them by."""
    if answer == "acknowledged":
        return "acknowledged" if current == "sent" else None
    if answer in ("accepted", "rejected"):
        return answer if _ORDER.get(current, 9) < 2 else None
    if answer == "done":
        return "done"
    raise ValueError(f"unknown answer {answer!r}")


def answers_allowed(status: str) -> list[str]:
    """The answers that still change something in `status`, in the order a desk offers them."""
    if status in FINAL_STATUSES:
        return []
    return [a for a in ANSWERS if next_status(status, a) is not None]


class HistoryEntry(_Frozen):
    """One thing that happened to a tracked alert or referral; `ref` is the response/escalation id."""

    at: Timestamp
    what: Str
    ref: Str | None = None
    by: Str | None = None
    detail: Str | None = None
    officer: Str | None = Field(default=None, description="The person who gave an answer (ReferralResponse.officer).")
    claimed_at: Timestamp | None = Field(
        default=None, description="An answer's `responded_at` as its sender claimed it; `at` is when the bus "
                                  "received it, which deadlines and on-time figures use.")


class TrackedState(Message):
    """The state of one alert or referral, kept by the alerts service (and queryable)."""

    id: Uuid
    kind: Literal["alert", "referral"]
    event_id: Uuid
    event_kind: Str
    case_id: Uuid | None
    jurisdiction: Str
    agency: Str
    role: Literal["lead", "cooperating"]
    urgency: Str
    raised_at: Timestamp
    ack_deadline: Timestamp | None
    next_deadline: Timestamp | None = Field(
        default=None, description="When the next re-send or escalation is due (alerts only).")
    status: TrackedStatus = "sent"
    step: Int = 0
    level: Int = 0
    resends: Int = 0
    target_agency: Str
    target_jurisdiction: Str
    acked_at: Timestamp | None = None
    exercise: Bool = False
    twin_id: Uuid | None = Field(
        default=None, description="The alert of a lead referral, or the lead referral of an alert.")
    reassigned_to: Uuid | None = None
    grouped: Bool = Field(
        default=False, description="A clue's referral grouped under the open case it was linked to (`case_id`): "
                                   "answered as usual, never paged nor given a deadline of its own.")
    grouped_under: Uuid | None = Field(
        default=None, description="An alert grouped under its open case (status `grouped`): the case's own "
                                  "alert, which stands for it.")
    after_resolution: Timestamp | None = Field(
        default=None, description="A duty of a resolved case that stays open because it was raised after the "
                                  "resolution (a new report, the found child's aftercare): when the police "
                                  "reported the resolution.")
    escalation: Escalation | None = Field(
        default=None, description="The latest re-send, escalation or re-assignment applied: what its receiver "
                                  "is paged with.")
    referral: Referral | None = None
    alert: PoliceAlert | None = None
    history: tuple[HistoryEntry, ...] = ()

    def has(self, ref: str) -> bool:
        """True when the response or escalation `ref` has already been applied."""
        return any(h.ref == ref for h in self.history)

    def addressed_to(self) -> frozenset[str]:
        """The agencies entitled to answer this alert or referral: the one it was addressed to and
        every agency a re-send or an escalation reached (DECISIONS.md 2). A re-assignment after a
        rejection is a referral of its own, addressed to the joint office."""
        reached = {h.by for h in self.history if h.what in ("resend", "escalate") and h.by}
        return frozenset({self.agency, self.target_agency, *reached})


class LinkedClue(_Frozen):
    """A clue report linked to a case, with why it matched."""

    event_id: Uuid
    kind: Str
    jurisdiction: Str
    reason: Str
    linked_at: Timestamp
    referral_agencies: tuple[Str, ...] = Field(
        default=(), description="The agencies the clue was referred to, as their referrals reach the alerts "
                                "service (`clue_referred` changes add the late ones).")


CaseChangeKind = Literal["opened", "clue_linked", "clue_referred", "report_grouped", "closed", "close_refused"]


class CaseChange(Message):
    """A missing-child case after its latest change (the `cases.changes` topic is compacted by
    case id, so its last message per key is the case's current state)."""

    case_id: Uuid
    change: CaseChangeKind
    changed_at: Timestamp
    jurisdiction: Str
    owner: AgencyCode = Field(description="The command centre's special case group (专案组) owns it.")
    event_id: Uuid = Field(description="The report that opened the case.")
    alert_id: Uuid
    opened_at: Timestamp
    status: Literal["open", "closed"] = "open"
    exercise: Bool = False
    descriptors: ChildDescriptors = ChildDescriptors()
    clues: tuple[LinkedClue, ...] = ()
    grouped_reports: tuple[Uuid, ...] = ()
    last_clue: LinkedClue | None = Field(default=None, description="The clue this change forwards.")
    closed_by: Uuid | None = Field(default=None, description="The resolution event.")
    resolved_at: Timestamp | None = Field(
        default=None, description="When the police reported the resolution (its reported_at): a referral or "
                                  "alert of the case raised until then closes, even when it arrives later.")
    outcome: Str | None = None
    refusal: Str | None = Field(default=None, description="Why the latest close attempt was refused.")

    @property
    def key(self) -> bytes:
        return str(self.case_id).encode()


def dump(model: BaseModel) -> bytes:
    """The bus's wire format: compact JSON."""
    return model.model_dump_json().encode()


def as_dict(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
