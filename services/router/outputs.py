"""Outputs of a routed event beside its referrals, each a pure `Emitter`: the police alert, the receipt, the audit."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pydantic_core import to_json

from rules.catalog import catalog
from rules.deadlines import Deadlines
from rules.engine import WrittenReferral, plan_status
from schemas.encoding import Template, made, template, text_json, utc_now_json
from schemas.events import Event
from schemas.receipts import Receipt, RefusalField, RoutedTo, audit_record, written_audit_records
from schemas.referrals import DeadLetter, Referral
from services.router.alert import PoliceAlertEmitter
from services.router.handling import Emitter, Outgoing, event_parts
from topics.catalog import AUDIT, RECEIPTS

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _written_now(clock: Clock) -> bytes:
    """The JSON of the clock's time: the wall clock's written from its microseconds
    (`utc_now_json`), a clock a test injects serialised as it is."""
    return utc_now_json() if clock is _utcnow else to_json(clock())


#: A routed receipt's fields written per event (the others: 'routed', no refusal).
_RECEIPT = template(Receipt, ("event_id", "reporter_agency", "kind", "jurisdiction", "exercise", "routed_to",
                              "expired_plans", "routed_by_plan_in_force", "plan_note", "issued_at"),
                    {"status": "routed", "refusal_reason": None, "refusal_errors": ()})
_NULL = b"null"
_RECEIPTS, _AUDIT = RECEIPTS.name, AUDIT.name


@lru_cache(maxsize=1024)
def _routed_to(agency: str, role: str, rule_id: str, clause: str, file: str, urgency: str) -> Template:
    """A receipt's entry for a referral of one duty, written but for its id and deadlines."""
    return template(RoutedTo, ("referral_id", "ack_by", "due_by"),
                    {"agency": agency, "role": role, "rule_id": rule_id, "clause": clause, "file": file,
                     "urgency": urgency})


#: The receipt's plan fields when every plan of the event's chain was in force (`plan_status`).
_PLANS_IN_FORCE = (b"[]", _NULL, _NULL)


@lru_cache(maxsize=4096)
def _ended_plans(jurisdiction: str, day: dt.date) -> tuple[str, ...]:
    """The plans of the jurisdiction's chain that had ended on `day` (`plan_status` reads the
    same): only when there are any has the receipt more to say about plans."""
    cat = catalog()
    return tuple(c for c in cat.chain(jurisdiction) if cat.jurisdictions[c].expired_on(day))


#: `_ended_plan_parts` written before, by (plans that had ended, plans in force that decided a referral).
_ENDED_PLANS: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[bytes, bytes, bytes]] = {}


def _ended_plan_parts(event: Event, ended: tuple[str, ...], written: Sequence[WrittenReferral]
                      ) -> tuple[bytes, bytes, bytes]:
    """The JSON of the receipt's plan fields (`plan_status`) for an event of a chain whose plans
    `ended` had ended when it happened. They are a function of those plans (which also give the
    day the last of them ended) and of the plans in force that decided a referral, in order:
    written once for each, whatever the jurisdiction and the day."""
    # The plans in force as the referrals name them, repeats and all: a key at least as fine as
    # the distinct plans `plan_status` reads, without making them distinct per event.
    key = (ended, tuple([w.duty.decided_by for w in written if w.parts["expired_plan"] == b"false"]))
    found = _ENDED_PLANS.get(key)
    if found is None:
        plans = plan_status(event, [w.referral for w in written])
        found = (to_json(plans.expired_plans), to_json(plans.deferred_to), to_json(plans.note))
        if len(_ENDED_PLANS) >= 4096:  # bounded: combinations of plans and referrals are few, but not fixed
            _ENDED_PLANS.clear()
        _ENDED_PLANS[key] = found
    return found


def routed_receipt(event: Event, referrals: Sequence[Referral], issued_at: dt.datetime) -> Receipt:
    """The receipt `ReceiptEmitter` writes for a routed event (built and validated: for readers
    and tests; the emitter writes its bytes from the referrals' parts)."""
    plans = plan_status(event, referrals)
    return Receipt(
        event_id=str(event.event_id), status="routed", reporter_agency=event.reporter.agency,
        kind=event.kind, jurisdiction=event.jurisdiction, exercise=event.exercise,
        routed_to=tuple(RoutedTo(agency=r.agency, role=r.role, referral_id=r.referral_id, rule_id=r.rule_id,
                                 clause=r.citation.clause, file=r.citation.file, urgency=r.urgency,
                                 ack_by=r.ack_by, due_by=r.due_by) for r in referrals),
        expired_plans=plans.expired_plans, routed_by_plan_in_force=plans.deferred_to, plan_note=plans.note,
        issued_at=issued_at)


@dataclass(frozen=True)
class ReceiptEmitter:
    """The reporter's receipt: every agency the event went to and the clause, or why it was refused;
    and, for an event after its plan ended, that the plan in force routed it (guidance 7).

    Pure but for the clock, which tests inject. Keyed by event id, like the event.
    """

    now: Clock = field(default=_utcnow)

    def __call__(self, event: Event, written: Sequence[WrittenReferral]) -> Sequence[Outgoing]:
        # `routed_receipt(event, referrals, now).model_dump_json()`, written from the parts of the
        # referrals' messages (ids, deadlines, the event's fields) and each duty's words as
        # written before, without building or validating the receipt.
        shared = event_parts(event, written)
        event_id = shared["event_id"]
        routed_to = []
        for r, _, parts in written:
            c = r.citation
            routed_to.append(_routed_to(r.agency, r.role, r.rule_id, c.clause, c.file, r.urgency)
                             .fill(parts["referral_id"], parts["ack_by"], parts["due_by"]))
        ended = _ended_plans(event.jurisdiction, event.occurred_at.date())
        plan_parts = _ended_plan_parts(event, ended, written) if ended else _PLANS_IN_FORCE
        reporter = event.reporter.agency
        value = _RECEIPT.fill(
            event_id, _NULL if reporter is None else text_json(reporter), shared["kind"], shared["jurisdiction"],
            shared["exercise"], b"[%s]" % b",".join(routed_to), *plan_parts, _written_now(self.now))
        return (made(Outgoing, (_RECEIPTS, event_id[1:-1], value)),)

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

    def __call__(self, event: Event, written: Sequence[WrittenReferral]) -> Sequence[Outgoing]:
        # `audit_records_json(event.event_id, "routed", "router", now, (referral_id, agency, role)
        # of each referral)`, with the ids as the referrals' messages wrote them.
        event_id = event_parts(event, written)["event_id"]
        key = event_id[1:-1]  # AuditRecord.key: the event id's text
        records = written_audit_records(key, event_id, "routed", "router", _written_now(self.now),
                                        [(parts["referral_id"], r.agency, r.role) for r, _, parts in written])
        return tuple([made(Outgoing, (_AUDIT, key, record)) for record in records])

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
