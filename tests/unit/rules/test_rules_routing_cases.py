"""Table-driven routing: every case in tests/data/routing_cases.yaml, each naming its clause.

Every case states the exact lead and cooperating sets (a missing unit and an extra one both
fail), the urgency of its leads and the action in the plan's words; together the cases name
every clause of every plan text that a rule routes (rules/coverage.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rules.catalog import catalog
from rules.engine import RuleBook, is_triage, is_unrouted, route

CASES_PATH = Path(__file__).parents[2] / "data" / "routing_cases.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CASES_PATH.read_text(encoding="utf-8"))
SEED_OF = {j.seed[:3]: j.seed for j in catalog().jurisdictions.values() if j.seed}


def _clauses(case: dict[str, Any]) -> tuple[str, list[str]]:
    """'004 三、(二)2.(1)——4; 三、(二)2.(1)——5' -> (seed file, [labels])."""
    prefix, _, labels = case["clause"].partition(" ")
    return SEED_OF[prefix], [label.strip() for label in labels.split(";")]


def test_every_case_names_its_clause_and_states_exact_sets() -> None:
    assert len({c["name"] for c in CASES}) == len(CASES)
    for c in CASES:
        assert c["clause"][:3] in SEED_OF, c["name"]
        assert {"lead", "cooperating"} <= set(c["expect"]), c["name"]
        if c["expect"]["lead"]:
            assert c["expect"].get("urgency") and c["expect"].get("action"), c["name"]


def test_cases_cover_every_routed_clause_of_every_plan() -> None:
    from rules.coverage import coverage
    from rules.engine import load_packs
    from rules.seeds import default_seeds_dir, load_seed

    seeds = default_seeds_dir()
    if not seeds.is_dir():
        pytest.skip("plan texts not available")
    named: dict[str, set[str]] = {}
    for c in CASES:
        file, labels = _clauses(c)
        known = {p.label for p in load_seed(seeds, file).paragraphs()}
        assert set(labels) <= known, (c["name"], set(labels) - known)
        named.setdefault(file, set()).update(labels)
    for cov in coverage(load_packs(), seeds):
        routed = {x.label for x in cov.clauses if x.covered}
        assert routed - named.get(cov.seed, set()) == set(), cov.jurisdiction


def _strictest(levels: set[str]) -> str:
    return min(levels, key=catalog().urgency_rank)


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
        f"{r.role} {r.agency} ({r.rule_id}, {r.urgency})" for r in refs)
    assert leads == set(expect["lead"]), context
    assert coops == set(expect["cooperating"]), context
    assert not leads & coops, context  # one role per agency and event
    for agency, level in expect.get("urgency", {}).items():
        mine = {r.urgency for r in refs if r.agency == agency and r.role == "lead"}
        assert mine and _strictest(mine) == level, context
    if "action" in expect:
        assert any(expect["action"] in r.action_zh for r in refs), (
            f"{expect['action']!r} not in " + " | ".join(r.action_zh for r in refs))
    assert set(expect.get("rules", ())) <= set(by_rule), context
    for rule_id, pack in expect.get("decided_by", {}).items():
        assert rule_id in by_rule, context
        assert by_rule[rule_id].decided_by == pack, context
    for rule_id, parts in expect.get("constraints", {}).items():
        text = " ".join(by_rule[rule_id].constraints)
        for part in parts:
            assert part in text, f"{rule_id} lacks {part!r}: {text}"
    for rule_id, clause in expect.get("cites", {}).items():
        assert by_rule[rule_id].citation.clause == clause, context
    if "triage" in expect:
        assert any(is_triage(r) for r in refs) == expect["triage"], context
    if "unrouted" in expect:
        assert any(is_unrouted(r) for r in refs) == expect["unrouted"], context
    if "expired" in expect:
        assert all(r.expired_plan == expect["expired"] for r in refs), context
