"""Every reference rule (../shared/plan/rules.yaml) is carried by a pack, and every seed rule
routes its event kind, in its own jurisdiction, to the agencies the clause names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules.catalog import catalog
from rules.engine import RuleBook, route

REF_PATH = Path(__file__).resolve().parents[4] / "shared" / "plan" / "rules.yaml"
pytestmark = pytest.mark.skipif(not REF_PATH.is_file() and not os.environ.get("CI"),
                                reason="reference extraction absent")
REF: list[dict[str, Any]] = (yaml.safe_load(REF_PATH.read_text(encoding="utf-8"))
                             if REF_PATH.is_file() else [])

#: A person who meets every condition a pack rule tests (16-year-old girl, disabled, coerced …).
PERSON = {"age": 16, "sex": "female", "disability": "intellectual", "coerced": True,
          "willing_to_train": True, "cannot_or_will_not_return_home": True,
          "origin_unknown": True, "adopted": True, "willing_to_return_home": True}


def _successors(codes: list[str]) -> set[str]:
    out: set[str] = set()
    for c in codes:
        a = catalog().agencies[c]
        out |= _successors(list(a.successors)) if a.abolished else {c}
    return out


def test_every_reference_rule_is_covered(book: RuleBook) -> None:
    covered = {i for p in book.packs.values() for r in p.rules for i in r.ref}
    covered |= {i for p in book.packs.values() for c in p.constraints for i in c.ref}
    assert sorted({r["id"] for r in REF} - covered) == []


def _seed_rules(book: RuleBook) -> list[tuple[str, Any, str]]:
    out = []
    for code, pack in sorted(book.packs.items()):
        if pack.seed is None:
            continue
        for rule in pack.rules:
            for kind in (rule.when.kind if rule.when else ()):
                out.append((code, rule, kind))
    return out


def test_seed_rules_route_as_their_clause_says(book: RuleBook, event: Any) -> None:
    """For each rule of a seed pack and each of its kinds: the rule fires for a person meeting
    its conditions, and its referrals go to the agencies the reference names for that clause
    (lead, cooperating, report recipient), abolished agencies replaced by successors."""
    by_id = {r["id"]: r for r in REF}
    checked = 0
    for code, rule, kind in _seed_rules(book):
        foreign = kind.startswith("foreign_victim") or kind == "illegal_foreigner_found"
        person = {**PERSON, "nationality": "VN" if foreign else "CN"}
        refs = route(event(kind, code, person, details={"deceived": True}), book)
        fired = [r for r in refs if r.rule_id in (f"{code}.{rule.key}",
                                                   f"{code}.{rule.key}.triage")]
        assert fired, f"{code}.{rule.key} ({kind}) did not fire: {[r.rule_id for r in refs]}"
        agencies = {r.agency for r in fired}
        for ref_id in rule.ref:
            ref = by_id[ref_id]
            named = [x["code"] for x in ref["lead"] + ref["cooperating"] + ref.get("report_to", [])
                     if (x["code"] != "unspecified" and not x["code"].startswith("police."))
                     or x["code"] in ("police.command_center", "police.local_station")]
            expected = _successors(named) - {"police"}  # police may be a sub-unit or catch-all
            if not rule.lead:
                # The plan names no lead: the lead comes from the parent or from triage.
                expected &= set(rule.cooperating or ())
            missing = expected - agencies
            assert not missing, f"{code}.{rule.key} <- {ref_id}: {missing} not routed ({agencies})"
        checked += 1
    assert checked > 150

