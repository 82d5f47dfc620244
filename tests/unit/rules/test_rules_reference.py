"""Every reference rule (../shared/plan/rules.yaml) is carried by a pack or its clause is recorded
as not routed, and every seed rule routes its event kinds, in its own jurisdiction while its plan
is in force, to exactly the units it names. The reference is not the authority (the seed text
is: see test_rules_lint_cli.py for the quotes naming each unit); it is a checklist."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules.catalog import catalog
from rules.engine import RuleBook, route
from rules.seeds import default_seeds_dir, load_seed

REF_PATH = Path(__file__).resolve().parents[4] / "shared" / "plan" / "rules.yaml"
pytestmark = pytest.mark.skipif(not REF_PATH.is_file() and not os.environ.get("CI"),
                                reason="reference extraction absent")
REF: list[dict[str, Any]] = (yaml.safe_load(REF_PATH.read_text(encoding="utf-8"))
                             if REF_PATH.is_file() else [])

#: A person who meets every condition a pack rule tests (16-year-old girl, disabled, coerced …).
PERSON = {"age": 16, "sex": "female", "disability": "intellectual", "coerced": True,
          "willing_to_train": True, "cannot_or_will_not_return_home": True,
          "origin_unknown": True, "adopted": True, "willing_to_return_home": True}


def _successors(codes: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for c in codes:
        a = catalog().agencies[c]
        out |= _successors(a.successors) if a.abolished else {c}
    return out


def test_every_reference_rule_is_carried_or_recorded_as_not_routed(book: RuleBook) -> None:
    covered = {i for p in book.packs.values() for r in p.rules for i in r.ref}
    covered |= {i for p in book.packs.values() for c in p.constraints for i in c.ref}
    seed_packs = {p.seed: p for p in book.packs.values() if p.seed}
    missing = []
    for r in REF:
        if r["id"] in covered:
            continue
        src = r["source"]
        pack = seed_packs[src["file"]]
        para = load_seed(default_seeds_dir(), src["file"]).paragraph_at(src["quote"], src["clause"])
        if para is None or para.label not in {n.clause for n in pack.not_routed}:
            missing.append(r["id"])
    assert missing == []


def _in_force(jurisdiction: str) -> dt.datetime:
    period = catalog().jurisdictions[jurisdiction].period
    day = max(period.start, dt.date(2024, 5, 1)) if period.end >= dt.date(2024, 5, 1) else \
        period.end - dt.timedelta(days=100)
    return dt.datetime.combine(day, dt.time(10), tzinfo=dt.UTC)


def test_seed_rules_route_to_the_units_they_name(book: RuleBook, event: Any) -> None:
    """For each rule of a seed pack and each of its kinds, in its plan's period: the rule fires
    for a person meeting its conditions, and its referrals go to its lead and cooperating units
    (successors for abolished ones), less partners who lead another rule of the same event."""
    checked = 0
    for code, pack in sorted(book.packs.items()):
        if pack.seed is None:
            continue
        for rule in pack.rules:
            for slot_kind in {k for (j, k) in book.index if j == code}:
                slots = [s for s in book.slots(code, slot_kind) if s.key == rule.key]
                if not slots or slots[0].variants[0].pack != code:
                    continue
                v = slots[0].variants[0]
                foreign = slot_kind.startswith("foreign_victim") or slot_kind == "illegal_foreigner_found"
                person = {**PERSON, "nationality": "VN" if foreign else "CN"}
                refs = route(event(slot_kind, code, person, details={"deceived": True},
                                   occurred_at=_in_force(code)), book)
                mine = [r for r in refs if r.rule_id in (v.rule_id, v.rule_id + ".triage")]
                assert mine, f"{v.rule_id} ({slot_kind}) did not fire: {[r.rule_id for r in refs]}"
                leads = {r.agency for r in refs if r.role == "lead"}
                mine_leads = {r.agency for r in mine if r.role == "lead"}
                others_lead = any(r.role == "lead" for r in refs if r not in mine)
                if v.lead:
                    assert mine_leads == set(v.lead), v.rule_id
                else:  # no named lead: partners of the event's leads, or triage if none
                    assert mine_leads == (set() if others_lead else {"anti_trafficking_office"})
                assert {r.agency for r in mine if r.role == "cooperating"} == (
                    _successors(v.cooperating) - leads), v.rule_id
                checked += 1
    assert checked > 200
