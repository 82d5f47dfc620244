"""Receipts and audit lines the router emits (the ACL plan: tests/unit/test_acl_plan.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from schemas.receipts import AuditRecord, Receipt
from services.router.handling import Position, Refused, Routed, Router
from services.router.outputs import AuditEmitter, ReceiptEmitter
from tests.unit.intake.intake_fakes import HOSPITAL, body, hospital_event
from topics.catalog import AUDIT, RECEIPTS

NOW = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
POS = Position("events.inbound", 0, 7)


@pytest.fixture(scope="module")
def router() -> Router:
    deadlines = Deadlines.load()
    return Router(load_rulebook(), deadlines, (ReceiptEmitter(lambda: NOW), AuditEmitter(lambda: NOW)))


def _on(outcome: Routed | Refused, topic: str) -> list[dict[str, object]]:
    return [json.loads(m.value) for m in outcome.messages if m.topic == topic]


def test_routed_receipt_names_every_agency_and_clause(router: Router) -> None:
    event = hospital_event()
    outcome = router.handle(body(event), POS)
    assert isinstance(outcome, Routed) and outcome.referrals
    [raw] = _on(outcome, RECEIPTS.name)
    receipt = Receipt.model_validate(raw)
    assert receipt.status == "routed" and receipt.reporter_agency == HOSPITAL
    assert [(r.agency, r.rule_id, r.clause) for r in receipt.routed_to] == [
        (r.agency, r.rule_id, r.citation.clause) for r in outcome.referrals]
    audits = [AuditRecord.model_validate(a) for a in _on(outcome, AUDIT.name)]
    assert {a.referral_id for a in audits} == {r.referral_id for r in outcome.referrals}
    assert all(a.action == "routed" for a in audits)
    # Receipts and audit lines hold ids and codes, never report contents.
    text = json.dumps(_on(outcome, RECEIPTS.name) + _on(outcome, AUDIT.name), ensure_ascii=False)
    assert "刘招娣" not in text and "birth certificate" not in text and "云阳县人民医院" not in text


def test_refused_event_gets_a_refused_receipt_for_its_reporter(router: Router) -> None:
    event = hospital_event(jurisdiction="atlantis")
    outcome = router.handle(body(event), POS)
    assert isinstance(outcome, Refused)
    [raw] = _on(outcome, RECEIPTS.name)
    receipt = Receipt.model_validate(raw)
    assert receipt.status == "refused" and receipt.event_id == event["event_id"]
    assert receipt.reporter_agency == HOSPITAL and receipt.refusal_reason == "invalid_event"
    assert "jurisdiction" in {f.field for f in receipt.refusal_errors}
    assert [a["action"] for a in _on(outcome, AUDIT.name)] == ["refused"]


def test_unreadable_message_gets_no_receipt(router: Router) -> None:
    outcome = router.handle(b"\xff not json", POS)
    assert isinstance(outcome, Refused) and _on(outcome, RECEIPTS.name) == []
