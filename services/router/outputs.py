"""Outputs of a routed event beside its referrals, each a pure `Emitter`: the police alert, the receipt, the audit."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rules.deadlines import Deadlines
from rules.engine import plan_status
from schemas.encoding import dump_values
from schemas.events import Event
from schemas.receipts import Receipt, RefusalField, audit_record, audit_records_json
from schemas.referrals import DeadLetter, Referral
from services.router.alert import PoliceAlertEmitter
from services.router.handling import Emitter, Outgoing
from topics.catalog import AUDIT, RECEIPTS

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ReceiptEmitter:
    """The reporter's receipt: every agency the event went to and the clause, or why it was refused;
    and, for an event after its plan ended, that the plan in force routed it (guidance 7).

    Pure but for the clock, which tests inject. Keyed by event id, like the event.
    """

    now: Clock = field(default=_utcnow)

    def __call__(self, event: Event, referrals: Sequence[Referral]) -> Sequence[Outgoing]:
        # Built from the validated event and the referrals the engine built: serialised as the
        # model writes it, without validating it all again (schemas/encoding.py); every field given but
        # schema_version (the model's default, written first).
        plans = plan_status(event, referrals)
        event_id = str(event.event_id)
        receipt = dump_values(Receipt, {
            "event_id": event_id, "status": "routed", "reporter_agency": event.reporter.agency,
            "kind": event.kind, "jurisdiction": event.jurisdiction, "exercise": event.exercise,
            "routed_to": [{"agency": r.agency, "role": r.role, "referral_id": r.referral_id,
                           "rule_id": r.rule_id, "clause": r.citation.clause, "file": r.citation.file,
                           "urgency": r.urgency, "ack_by": r.ack_by, "due_by": r.due_by}
                          for r in referrals],
            "refusal_reason": None, "refusal_errors": (),
            "expired_plans": plans.expired_plans, "routed_by_plan_in_force": plans.deferred_to,
            "plan_note": plans.note, "issued_at": self.now()})
        return (Outgoing(RECEIPTS.name, event_id.encode(), receipt),)

    def refused(self, letter: DeadLetter) -> Sequence[Outgoing]:
        """A 'refused' receipt when the refused message named a valid event id (a UUID: the only
        form a reporter can ask about), readable by the known agency it named as its reporter."""
        event_id = refused_event_id(letter)
        if event_id is None:
            return ()
        receipt = Receipt(
            event_id=str(event_id), status="refused", reporter_agency=letter.reporter_agency,
            refusal_reason=letter.reason,
            refusal_errors=tuple(RefusalField(field=e["field"], reason=e["reason"]) for e in letter.errors),
            issued_at=self.now())
        return (Outgoing(RECEIPTS.name, receipt.event_id.encode(), receipt.model_dump_json().encode()),)


@dataclass(frozen=True)
class AuditEmitter:
    """Audit records of the router's decisions: one 'routed' per referral, or one 'refused'. Ids only."""

    now: Clock = field(default=_utcnow)

    def __call__(self, event: Event, referrals: Sequence[Referral]) -> Sequence[Outgoing]:
        key = str(event.event_id).encode()  # AuditRecord.key
        records = audit_records_json(event.event_id, "routed", "router", self.now(),
                                     ((r.referral_id, r.agency, r.role) for r in referrals))
        return tuple(Outgoing(AUDIT.name, key, record) for record in records)

    def refused(self, letter: DeadLetter) -> Sequence[Outgoing]:
        event_id = refused_event_id(letter)
        if event_id is None:
            return ()
        rec = audit_record(event_id, "refused", "router", self.now(), detail=letter.reason)
        return (Outgoing(AUDIT.name, rec.key, rec.model_dump_json().encode()),)


def refused_event_id(letter: DeadLetter) -> uuid.UUID | None:
    """The refused message's event id when it was a UUID (a digest stands for anything else)."""
    try:
        return uuid.UUID(letter.event_id) if letter.event_id and not letter.event_id.startswith("sha256:") else None
    except ValueError:
        return None


def emitters(alert_deadlines: Deadlines) -> tuple[Emitter, ...]:
    """Every emitter the router runs, in order; the police alert with `alert_deadlines`."""
    # The alert leads: the command centre pages before anything else is produced for the event.
    return (PoliceAlertEmitter(alert_deadlines), ReceiptEmitter(), AuditEmitter())
