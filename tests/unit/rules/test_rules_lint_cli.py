"""Lint (quotes, reachability), clause parsing, and the `rules` CLI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from rules.cli import app
from rules.engine import DEFAULT_PACKS_DIR
from rules.lint import lint
from rules.seeds import default_seeds_dir, load_seed, normalise

SEEDS = default_seeds_dir()
# Outside CI a clone without ../shared skips these; in CI (CI=true) a missing folder fails them.
needs_seeds = pytest.mark.skipif(not SEEDS.is_dir() and not os.environ.get("CI"), reason="plan texts not available")
runner = CliRunner()


def _copy_packs(tmp: Path) -> Path:
    folder = tmp / "packs"
    shutil.copytree(DEFAULT_PACKS_DIR, folder)
    return folder


def _edit(folder: Path, code: str, fn: Any) -> None:
    path = folder / f"{code}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    fn(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def _rule(data: dict[str, Any], key: str) -> dict[str, Any]:
    return next(r for r in data["rules"] if r["key"] == key)


@needs_seeds
def test_real_packs_lint_clean() -> None:
    assert [str(p) for p in lint(seeds_dir=SEEDS)] == []


@needs_seeds
def test_quote_outside_the_cited_clause(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    # 迅速调集警力 is in 第四十五条, not 第四十四条.
    _edit(folder, "xx_city", lambda d: _rule(d, "missing_child_rapid_search")["source"].update(
        clause="第四十四条"))
    problems = [str(p) for p in lint(folder, SEEDS)]
    assert problems == [
        "xx_city.yaml: rule missing_child_rapid_search: quote not in 000_7dbaf2c26904eceb.txt "
        "第四十四条: '接到儿童失踪报警后,由公安机关指挥中心迅速调集警力开展堵截、查找工作'"]


@needs_seeds
def test_quote_not_verbatim(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    _edit(folder, "xian", lambda d: _rule(d, "abandoned_infant_dna")["source"].update(
        quote="将弃婴移交给福利院之前"))
    (problem,) = lint(folder, SEEDS)
    assert problem.where == "xian.yaml: rule abandoned_infant_dna"
    assert problem.message.startswith("quote not in 001_56bdd0a940e471fd.txt 第八条")


@needs_seeds
def test_unknown_clause(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    _edit(folder, "shandong", lambda d: _rule(d, "sentencing")["source"].update(
        clause="二、(九)2.(1)"))
    (problem,) = lint(folder, SEEDS)
    assert problem.message == "002_91d53b139879ca8f.txt: 二、(九)2.(1): no '(九)' here"


@needs_seeds
def test_unreachable_rules(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)

    def contradict(d: dict[str, Any]) -> None:
        _rule(d, "victim_job_training")["when"]["all"] = [
            {"field": "person.age", "op": "ge", "value": 16},
            {"field": "person.age", "op": "lt", "value": 16}]
        _rule(d, "rescued_woman_employment")["when"]["all"] = [
            {"field": "person.sex", "op": "eq", "value": "woman"}]
        _rule(d, "missing_child_rapid_search")["when"]["all"] = [
            {"field": "person.age", "op": "ge", "value": 18}]

    _edit(folder, "xx_city", contradict)
    _edit(folder, "shandong", lambda d: _rule(d, "sentencing")["when"].update(all=[
        {"field": "person.sex", "value": "male"}, {"field": "person.is_child", "value": False}]))
    problems = sorted(str(p) for p in lint(folder, SEEDS))
    assert problems == [
        "shandong.yaml: rule sentencing: no event can reach it: conditions put every event "
        "outside the pack's scope (women and children (反对拐卖妇女儿童))",
        "xx_city.yaml: rule missing_child_rapid_search: no event can reach it: conditions on "
        "person.age exclude every age",
        "xx_city.yaml: rule rescued_woman_employment: no event can reach it: person.sex eq "
        "'woman': no such value (allowed: female, male, unknown)",
        "xx_city.yaml: rule victim_job_training: no event can reach it: conditions on "
        "person.age exclude every age",
    ]


def test_load_errors_are_lint_problems(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    _edit(folder, "xian", lambda d: _rule(d, "organ_trafficking").update(lead=["space_force"]))
    _edit(folder, "yunyang", lambda d: _rule(d, "organ_trafficking")["when"].update(
        kind="alien_found"))
    problems = [str(p) for p in lint(folder, SEEDS)]
    assert any("xian.yaml" in p and "unknown agency 'space_force'" in p for p in problems)
    assert any("yunyang.yaml" in p and "unknown event kind 'alien_found'" in p for p in problems)


def test_override_without_parent_key_is_a_lint_problem(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    _edit(folder, "honghe", lambda d: _rule(d, "accountability").update(override=True))
    problems = [str(p) for p in lint(folder, SEEDS)]
    assert ("honghe.yaml: rule accountability: override of a key that no parent pack has "
            "(yunnan -> national_2021)") in problems


# ------------------------------------------------------------------------------ seeds


def test_normalise_ignores_punctuation_variants() -> None:
    assert normalise("加强部门联动，建立发现、举报") == normalise("加强部门联动,建立发现 举报")
    assert normalise("（公安局负责）") == normalise("(公安局负责)")


@needs_seeds
@pytest.mark.parametrize(("file", "clause", "inside", "outside"), [
    ("000_7dbaf2c26904eceb.txt", "第四十条第二款", "依法移送公安机关处理", "加大打拐工作力度"),
    ("000_7dbaf2c26904eceb.txt", "第五条", "XXX铁路局", "第六条"),
    ("001_56bdd0a940e471fd.txt", "第五条 para 3", "积极配合公安机关", "宣传、网信"),
    ("002_91d53b139879ca8f.txt", "二、(一)2.(3)——2", "严禁出具虚假出生医学证明", "规范婚姻登记"),
    ("002_91d53b139879ca8f.txt", "二、(三)1.", "使其免受二次伤害", "行动措施"),
    ("004_ab66e05e62b6cad7.txt", "三、(二)2.(1)——4", "公安机关指挥中心", "来历不明儿童摸排"),
    ("004_ab66e05e62b6cad7.txt", "二、", "联席会议办公室设在县公安局", "行动措施及责任分解"),
    ("003_a8bbf767012b485e.txt", "三、三是", "寻亲、落户", "快速查找"),
])
def test_clause_spans(file: str, clause: str, inside: str, outside: str) -> None:
    seed = load_seed(SEEDS, file)
    assert seed.quote_in_clause(inside, clause)
    assert not seed.quote_in_clause(outside, clause)


def test_seeds_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REFERRAL_BUS_SEEDS_DIR", str(tmp_path))
    assert default_seeds_dir() == tmp_path


# -------------------------------------------------------------------------------- CLI


@needs_seeds
def test_cli_lint_ok() -> None:
    result = runner.invoke(app, ["lint", "--seeds", str(SEEDS)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 10 packs")


def test_cli_lint_fails_with_one_line_per_problem(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    _edit(folder, "honghe", lambda d: _rule(d, "accountability").update(override=True))
    result = runner.invoke(app, ["lint", "--packs", str(folder), "--seeds", str(SEEDS)])
    assert result.exit_code == 1
    assert "honghe.yaml: rule accountability: override of a key that no parent pack has" in (
        result.output)


def test_cli_show() -> None:
    result = runner.invoke(app, ["show", "xian"])
    assert result.exit_code == 0, result.output
    assert "xian -> shaanxi -> national_2021" in result.output
    assert "xian.missing_child_rapid_search" in result.output
    assert "police.command_center" in result.output


def test_cli_show_unknown_jurisdiction() -> None:
    result = runner.invoke(app, ["show", "atlantis"])
    assert result.exit_code == 2


def test_cli_diff() -> None:
    result = runner.invoke(app, ["diff", "xian", "xx_city"])
    assert result.exit_code == 0, result.output
    assert "abandoned_infant_found" in result.output
    assert "kinds;" in result.output
