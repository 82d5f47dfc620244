"""The reporter's receipt says when the event's own plan had ended and which plan routed it
(jurisdiction-differences.md, guidance 7): 山东 2015-2020, 云阳 2013-2020."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from rules.engine import RuleBook, load_rulebook, route_written
from schemas.receipts import Receipt
from services.router.outputs import ReceiptEmitter
from tests.unit.rules.conftest import make_event

NOW = dt.datetime(2026, 11, 20, 1, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def book() -> RuleBook:
    return load_rulebook()


def _receipt(book: RuleBook, **event: Any) -> Receipt:
    ev = make_event(**event)
    [message] = ReceiptEmitter(lambda: NOW)(ev, route_written(ev, book))
    return Receipt.model_validate(json.loads(message.value))


def test_after_the_plan_ended_the_receipt_names_the_plan_in_force(book: RuleBook) -> None:
    receipt = _receipt(book, kind="medical_staff_suspects_trafficking", jurisdiction="yunyang",
                       person={"age": 0}, occurred_at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC))
    assert receipt.expired_plans == ("yunyang", "chongqing", "national_2013")
    assert receipt.routed_by_plan_in_force == "national_2021"
    assert receipt.plan_note is not None and "ended on 2020-12-31" in receipt.plan_note
    assert {r.rule_id for r in receipt.routed_to} == {"national_2021.refer_suspected_trafficking"}


def test_an_expired_clause_that_still_routes_is_said_so(book: RuleBook) -> None:
    receipt = _receipt(book, kind="high_sex_ratio_area", jurisdiction="yunyang",
                       occurred_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    assert receipt.expired_plans == ("yunyang", "chongqing", "national_2013")
    assert receipt.routed_by_plan_in_force is None
    assert receipt.plan_note is not None and "routed by the expired plan" in receipt.plan_note


@pytest.mark.parametrize(("jurisdiction", "day"), [
    ("yunyang", dt.datetime(2018, 6, 1, tzinfo=dt.UTC)),  # within its period
    ("xian", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),     # a plan in force
])
def test_a_plan_in_force_adds_nothing(book: RuleBook, jurisdiction: str, day: dt.datetime) -> None:
    receipt = _receipt(book, kind="medical_staff_suspects_trafficking", jurisdiction=jurisdiction,
                       person={"age": 0}, occurred_at=day)
    assert (receipt.expired_plans, receipt.routed_by_plan_in_force, receipt.plan_note) == ((), None, None)
