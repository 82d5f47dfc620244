"""Table-driven routing: every case in tests/data/routing_cases.yaml, each naming its clause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rules.engine import RuleBook, is_triage, is_unrouted, route

CASES_PATH = Path(__file__).parents[2] / "data" / "routing_cases.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CASES_PATH.read_text(encoding="utf-8"))


def test_every_case_names_its_clause() -> None:
    assert all(c.get("clause") for c in CASES)
    assert len({c["name"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_routing_case(case: dict[str, Any], book: RuleBook, event: Any) -> None:
    spec = dict(case["event"])
    kind, jurisdiction = spec.pop("kind"), spec.pop("jurisdiction")
    person = spec.pop("person", None)
    ev = event(kind, jurisdiction, person, name=case["name"], **spec)
    refs = route(ev, book)
    expect = case["expect"]
    leads = {r.agency for r in refs if r.role == "lead"}
    coops = {r.agency for r in refs if r.role == "cooperating"}
    by_rule = {r.rule_id: r for r in refs}
    context = f"[{case['clause']}] got: " + "; ".join(
        f"{r.role} {r.agency} ({r.rule_id})" for r in refs)
    if "lead" in expect:
        assert leads == set(expect["lead"]), context
    if "cooperating" in expect:
        assert coops == set(expect["cooperating"]), context
    assert set(expect.get("lead_includes", ())) <= leads, context
    assert set(expect.get("cooperating_includes", ())) <= coops, context
    assert not set(expect.get("not_agencies", ())) & {r.agency for r in refs}, context
    assert set(expect.get("rules", ())) <= set(by_rule), context
    for rule_id, pack in expect.get("decided_by", {}).items():
        assert rule_id in by_rule, context
        assert by_rule[rule_id].decided_by == pack, context
    for agency, level in expect.get("urgency", {}).items():
        assert {r.urgency for r in refs if r.agency == agency and r.role == "lead"} == {level}, context
    for rule_id, parts in expect.get("constraints", {}).items():
        text = " ".join(by_rule[rule_id].constraints)
        for part in parts:
            assert part in text, f"{rule_id} lacks {part!r}: {text}"
    for rule_id, clause in expect.get("clause", {}).items():
        assert by_rule[rule_id].citation.clause == clause, context
    if "triage" in expect:
        assert any(is_triage(r) for r in refs) == expect["triage"], context
    if "unrouted" in expect:
        assert any(is_unrouted(r) for r in refs) == expect["unrouted"], context
    if "expired" in expect:
        assert all(r.expired_plan == expect["expired"] for r in refs), context
