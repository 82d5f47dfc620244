"""Receipts for reporters and the audit trail: ids, codes and times only, never report contents.

A mandated reporter (a doctor, a teacher, a coach-station worker) needs proof that the report
was made and where it went. The router writes one `Receipt` per event to the receipts topic;
the intake serves it at `GET /v1/events/{id}`. The audit trail (`AuditRecord`) says who
published, who received and who answered what, and when.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Literal

from pydantic import Field
from pydantic_core import to_json

from schemas.encoding import Template, Uuid5, template
from schemas.wire import Bool, Int, Message, Str, Timestamp, Uuid, WireModel

#: Namespace of deterministic audit ids: the same step recorded twice has the same id.
AUDIT_NAMESPACE = uuid.UUID("0c7f3a55-93b1-4f5e-8d1e-2a6b0f4c9e21")

ReceiptStatus = Literal["routed", "refused"]
AuditAction = Literal["published", "routed", "refused", "received", "answered", "replayed"]


class _Frozen(WireModel):
    """A part of a message (closed, immutable, strict)."""


class RoutedTo(_Frozen):
    """One agency the event was routed to, and the plan clause that put it there."""

    agency: Str
    role: Str
    referral_id: Uuid
    rule_id: Str
    clause: Str
    file: Str
    urgency: Str | None = None
    ack_by: Timestamp | None = Field(default=None, description="When the agency must acknowledge.")
    due_by: Timestamp | None = Field(default=None, description="When the action is due, if the urgency sets it.")


class RefusalField(_Frozen):
    """A failing field and why (no value: values may be personal data)."""

    field: Str
    reason: Str


class Receipt(Message):
    """The router's answer to a reporter: where the event went and why, or why it was refused."""

    event_id: Str = Field(description="The event id as published (a UUID for readable events).")
    status: ReceiptStatus
    reporter_agency: Str | None = Field(
        default=None, description="The agency named as reporter; who may read this receipt.")
    kind: Str | None = None
    jurisdiction: Str | None = None
    exercise: Bool = False
    routed_to: tuple[RoutedTo, ...] = ()
    refusal_reason: Str | None = Field(default=None, description="Stable reason code when refused.")
    refusal_errors: tuple[RefusalField, ...] = ()
    expired_plans: tuple[Str, ...] = Field(
        default=(), description="Plans of the event's jurisdiction whose period had ended when it "
                                "happened (e.g. 山东 2015-2020, 云阳 2013-2020).")
    routed_by_plan_in_force: Str | None = Field(
        default=None, description="The plan in force that routed the event instead of its expired "
                                  "plan (jurisdiction-differences.md, guidance 7); null if none did.")
    plan_note: Str | None = Field(
        default=None, description="Why: the expired plans and which plan routed the event.")
    issued_at: Timestamp


class AuditRecord(Message):
    """One step in an event's life: who (an agency code or a service), did what, when. Ids only."""

    audit_id: Uuid
    event_id: Str
    action: AuditAction
    actor: Str = Field(description="Agency code, or the service (router, intake) that acted.")
    at: Timestamp
    referral_id: Uuid | None = None
    agency: Str | None = Field(default=None, description="The agency concerned (e.g. the receiver).")
    detail: Str | None = Field(default=None, max_length=64,
                               description="A code (an answer, a reason), never free text.")

    @property
    def key(self) -> bytes:
        return self.event_id.encode()


def audit_record(event_id: str | uuid.UUID, action: AuditAction, actor: str, at: dt.datetime, *,
                 referral_id: uuid.UUID | None = None, agency: str | None = None,
                 detail: str | None = None) -> AuditRecord:
    """An audit record with a deterministic id, so that a step recorded twice is one step."""
    audit_id = uuid.uuid5(AUDIT_NAMESPACE,
                          f"{event_id}|{action}|{actor}|{referral_id or ''}|{agency or ''}|{detail or ''}")
    return AuditRecord(audit_id=audit_id, event_id=str(event_id), action=action, actor=actor, at=at,
                       referral_id=referral_id, agency=agency, detail=detail)


ClaimStatus = Literal["claimed", "accepted"]


class EventClaim(Message):
    """An intake replica's record on the claims topic: an agency claims an event id before the
    event is published (the first claim of an id in the log owns it, on every replica), then
    records its acceptance (the original answer to a repeated request)."""

    event_id: Uuid
    agency: Str
    status: ClaimStatus
    replica: Str = Field(max_length=32)
    at: Timestamp
    body_sha256: Str | None = Field(default=None, description="Of the accepted body (accepted only).")
    partition: Int | None = Field(default=None, description="Where the event was written (accepted only).")
    offset: Int | None = None

    @property
    def key(self) -> bytes:
        return str(self.event_id).encode()


def audit_records_json(event_id: str | uuid.UUID, action: AuditAction, actor: str, at: dt.datetime,
                       entries: Iterable[tuple[uuid.UUID | None, str | None, str | None]]) -> list[bytes]:
    """`audit_record(event_id, action, actor, at, referral_id=…, agency=…, detail=…)`, serialised,
    for each (referral_id, agency, detail) of one step of one event (the router's 'routed' per
    referral): `written_audit_records` of their JSON."""
    event_text = str(event_id)
    return written_audit_records(event_text.encode(), to_json(event_text), action, actor, to_json(at),
                                 [(to_json(r), a, d) for r, a, d in entries])


def written_audit_records(event_id: bytes, event_json: bytes, action: AuditAction, actor: str, at: bytes,
                          entries: Iterable[tuple[bytes, str | None, str | None]]) -> list[bytes]:
    """`audit_records_json` from parts written before: the event id's text (UTF-8) and its JSON,
    the JSON of the time, and for each record the JSON of its referral id (a UUID's, or null), its
    agency and detail. The ids are derived with the event's part hashed once; what the records of
    one step share (the event, the step, the time) is written once, and each record is its id,
    that, its referral id and its agency's part joined (the values, the bus's own, not validated
    again)."""
    step = _step(action, actor)
    ids = _AUDIT_IDS.after(event_id + step.name)
    shared = b"".join((step.after_id, event_json, step.after_event, at, step.after_time))
    head = step.head
    out = []
    for referral_id, agency, detail in entries:
        name_end, written_end = _entry_parts(step, agency, detail)
        # The id's name: "<referral id>|<agency>|<detail>", "" for each absent (`audit_record`).
        name = (referral_id[1:-1] if referral_id != _NULL else b"") + name_end
        out.append(b"".join((head, ids.json(name), shared, referral_id, written_end)))
    return out


@dataclass(frozen=True, slots=True, eq=False)
class _Step:
    """An audit record of one action by one actor, written but for its ids, time, agency and
    detail: the texts between those fields (`_step_record`), and the part of the ids' name after
    the event id. One per step (`_step`): hashed by identity, as `_entry_parts`'s key."""

    name: bytes
    head: bytes
    after_id: bytes
    after_event: bytes
    after_time: bytes
    after_referral: bytes
    after_agency: bytes
    tail: bytes


@cache
def _step(action: AuditAction, actor: str) -> _Step:
    return _Step(f"|{action}|{actor}|".encode(), *_step_record(action, actor).texts)


@lru_cache(maxsize=1024)
def _entry_parts(step: _Step, agency: str | None, detail: str | None) -> tuple[bytes, bytes]:
    """An audit record's agency and detail: the end of its id's name ("|agency|detail") and the
    end of the record from its agency on."""
    return (f"|{agency or ''}|{detail or ''}".encode(),
            b"".join((step.after_referral, _NULL if agency is None else to_json(agency), step.after_agency,
                      _NULL if detail is None else to_json(detail), step.tail)))


_NULL = b"null"
#: `Uuid5(AUDIT_NAMESPACE, prefix)` is `_AUDIT_IDS.after(prefix)`, the namespace hashed once.
_AUDIT_IDS = Uuid5(AUDIT_NAMESPACE, "")


@cache
def _step_record(action: AuditAction, actor: str) -> Template:
    """An audit record of `action` by `actor`, written but for its ids, time, agency and detail."""
    return template(AuditRecord, ("audit_id", "event_id", "at", "referral_id", "agency", "detail"),
                    {"action": action, "actor": actor})
