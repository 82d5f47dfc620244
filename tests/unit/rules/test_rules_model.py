"""One test per validation rule of the pack format, each with its exact message."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from rules.engine import compile_packs, load_packs
from rules.errors import PackError
from rules.model import Pack

XX = "000_7dbaf2c26904eceb.txt"
SRC = {"file": XX, "clause": "第四十五条", "quote": "迅速调集警力"}


def rule(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "key": "r", "when": {"kind": "child_missing_reported"}, "lead": ["police"],
        "action": "search", "action_zh": "迅速调集警力", "urgency": "immediate", "source": dict(SRC),
        "names": {"police": "公安机关指挥中心"}}
    base.update(kw)
    return base


def pack(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"jurisdiction": "xx_city", "parent": "national_2021", "seed": XX,
                            "rules": [rule()]}
    base.update(kw)
    return base


def with_rule(**kw: Any) -> dict[str, Any]:
    return pack(rules=[rule(**kw)])


def cond(**kw: Any) -> dict[str, Any]:
    return with_rule(when={"kind": "child_missing_reported", "all": [kw]})


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(d: dict[str, Any]) -> None:
        d[path] = value
    return apply


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown field", cond(field="person.height", op="eq", value=1),
     "unknown event field 'person.height'"),
    ("numeric op needs a number", cond(field="person.age", op="ge", value="16"),
     "person.age ge: value must be a number"),
    ("list op needs a list", cond(field="person.sex", op="in", value="female"),
     "person.sex in: value must be a list"),
    ("eq needs one value", cond(field="person.sex", op="eq", value=["female"]),
     "person.sex eq: value must be a single value"),
    ("unknown op", cond(field="person.sex", op="like", value="f"), "Input should be 'eq'"),
    ("unknown event kind", with_rule(when={"kind": "alien_found"}),
     "unknown event kind 'alien_found'"),
    ("a kind that only acts on a case", with_rule(when={"kind": "case_resolved"}),
     "event kind 'case_resolved' acts on an open case and assigns no duty: no rule routes it"),
    ("duplicate kind", with_rule(when={"kind": ["abandoned_infant_found"] * 2}),
     "duplicate event kind in when.kind"),
    ("unknown lead agency", with_rule(lead=["space_force"]),
     "rule r lead: unknown agency 'space_force'"),
    ("unknown cooperating agency", with_rule(cooperating=["space_force"]),
     "rule r cooperating: unknown agency 'space_force'"),
    ("unspecified is not routable", with_rule(cooperating=["unspecified"]),
     "rule r cooperating: 'unspecified' is not routable"),
    ("duplicate agency", with_rule(lead=["police", "police"]), "rule r lead: duplicate agency"),
    ("lead and cooperating overlap", with_rule(cooperating=["police"]),
     "rule r: an agency is both lead and cooperating"),
    ("candidate lead with a lead", with_rule(candidate_lead=["health"]),
     "rule r: candidate_lead is only for a rule with no lead"),
    ("unknown urgency", with_rule(urgency="soonish"), "rule r: unknown urgency 'soonish'"),
    ("duplicate constraint", with_rule(constraints=["a b c", "a b c"]),
     "rule r: duplicate constraint"),
    ("reserved key", with_rule(key="unrouted"), "rule key 'unrouted' is reserved"),
    ("bad key", with_rule(key="Bad Key"), "String should match pattern"),
    ("missing fields outside an override", with_rule(lead=None, urgency=None),
     "rule r: missing lead, urgency (only an override may inherit them)"),
    ("the clause's own words are required", with_rule(action_zh=None),
     "rule r: missing action_zh (only an override may inherit them)"),
    ("every unit is named by a quote", with_rule(cooperating=["health", "education"]),
     "rule r: health, education not named: add names.<unit>, a quote of the plan naming it"),
    ("names are agencies", with_rule(names={"police": "公安", "space_force": "太空军"}),
     "rule r names: unknown agency 'space_force'"),
    ("not_routed needs a plan text",
     {"jurisdiction": "national_2021", "parent": None, "generation_common": True,
      "triage": {"source": SRC}, "not_routed": [{"clause": "第四条", "reason": "organisation only"}]},
     "pack national_2021: not_routed needs a plan text (seed)"),
    ("a not_routed clause once",
     pack(not_routed=[{"clause": "第四条", "reason": "organisation only"}] * 2),
     "pack xx_city: a clause is listed twice in not_routed"),
    ("a reason is given", pack(not_routed=[{"clause": "第四条", "reason": "no"}]),
     "String should have at least 10 characters"),
    ("extra field", with_rule(priority=1), "Extra inputs are not permitted"),
    ("quote too short", with_rule(source={**SRC, "quote": "x"}),
     "String should have at least 2 characters"),
    ("unknown jurisdiction", pack(jurisdiction="atlantis"), "unknown jurisdiction 'atlantis'"),
    ("parent must match the catalog", pack(parent="national_2013"),
     "pack xx_city: parent 'national_2013' does not match the jurisdiction catalog "
     "('national_2021')"),
    ("seed must match the catalog", pack(seed="001_56bdd0a940e471fd.txt"),
     "pack xx_city: seed '001_56bdd0a940e471fd.txt' does not match the jurisdiction catalog"),
    ("generation_common must match in_seed", pack(generation_common=True),
     "pack xx_city: generation_common must be False (in_seed is True)"),
    ("duplicate rule key", pack(rules=[rule(), rule()]), "pack xx_city: duplicate rule key 'r'"),
    ("rule cites another plan", with_rule(source={**SRC, "file": "001_56bdd0a940e471fd.txt"}),
     "pack xx_city: rule r cites 001_56bdd0a940e471fd.txt, not this plan's text"),
    ("constraint pattern matches nothing",
     pack(constraints=[{"id": "c", "text": "abc", "kinds": ["zzz*"], "source": SRC}]),
     "constraint c: kind pattern 'zzz*' matches no event kind"),
    ("duplicate constraint id",
     pack(constraints=[{"id": "c", "text": "abc", "kinds": ["rescued_*"], "source": SRC}] * 2),
     "pack xx_city: duplicate constraint id"),
    ("root pack needs triage",
     {"jurisdiction": "national_2021", "parent": None, "generation_common": True, "rules": []},
     "pack national_2021: a root pack must declare triage"),
    ("triage agency known",
     {"jurisdiction": "national_2021", "parent": None, "generation_common": True,
      "triage": {"agency": "nobody", "source": SRC}},
     "triage: unknown agency 'nobody'"),
]


@pytest.mark.parametrize(("name", "data", "message"), CASES, ids=[c[0] for c in CASES])
def test_validation_message(name: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Pack.model_validate(copy.deepcopy(data))
    assert message in str(exc.value), str(exc.value)


def test_minimal_pack_is_valid() -> None:
    Pack.model_validate(pack())


# --------------------------------------------------------------------- cross-pack (compile)

ROOT = {"jurisdiction": "national_2021", "parent": None, "generation_common": True,
        "triage": {"source": {"file": XX, "clause": "第九条", "quote": "设办公室"}},
        "rules": [rule(key="base")]}


def _write(tmp: Path, *packs: dict[str, Any]) -> Path:
    for p in packs:
        (tmp / f"{p['jurisdiction']}.yaml").write_text(yaml.safe_dump(p, allow_unicode=True))
    return tmp


def _problems(folder: Path) -> list[str]:
    with pytest.raises(PackError) as exc:
        compile_packs(load_packs(folder))
    return exc.value.problems


def test_override_of_a_missing_key(tmp_path: Path) -> None:
    child = pack(rules=[rule(key="nothing_above", override=True)])
    assert _problems(_write(tmp_path, ROOT, child)) == [
        "xx_city.yaml: rule nothing_above: override of a key that no parent pack has "
        "(national_2021)"]


def test_same_key_without_override(tmp_path: Path) -> None:
    child = pack(rules=[rule(key="base")])
    assert _problems(_write(tmp_path, ROOT, child)) == [
        "xx_city.yaml: rule base: same key as a rule of national_2021; declare override: true"]


def test_missing_parent_pack(tmp_path: Path) -> None:
    assert _problems(_write(tmp_path, pack())) == [
        "xx_city.yaml: parent pack 'national_2021' is missing"]


def test_file_name_must_match_jurisdiction(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(ROOT, allow_unicode=True))
    with pytest.raises(PackError) as exc:
        load_packs(tmp_path)
    assert exc.value.problems == [
        "other.yaml: jurisdiction 'national_2021' does not match the file name"]


def test_invalid_pack_reports_file_and_field(tmp_path: Path) -> None:
    _write(tmp_path, ROOT, with_rule(lead=["space_force"]))
    with pytest.raises(PackError) as exc:
        load_packs(tmp_path)
    assert exc.value.problems == ["xx_city.yaml: rules.0: rule r lead: unknown agency 'space_force'"]


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="no rule packs"):
        load_packs(tmp_path)
