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
        "第四十四条: '接到儿童失踪报警后,由公安机关指挥中心迅速调集警力开展堵截、查找工作'",
        # …and 第四十五条, now cited by no rule, is a duty clause no rule routes.
        "xx_city.yaml: 第四十五条: assigns a duty (names police, police.command_center) but no "
        "rule routes it and not_routed gives no reason"]


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
    problems = lint(folder, SEEDS)
    assert problems[0].where == "shandong.yaml: rule sentencing"
    assert problems[0].message == "002_91d53b139879ca8f.txt: 二、(九)2.(1): no '(九)' here"
    # The naming quotes default to the same clause: they cannot be found either.
    assert "shandong.yaml: rule sentencing names.court: 002_91d53b139879ca8f.txt: 二、(九)2.(1): " \
           "no '(九)' here" in [str(p) for p in problems]


@needs_seeds
def test_unreachable_rules(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)

    def contradict(d: dict[str, Any]) -> None:
        _rule(d, "victim_job_training")["when"]["all"] = [
            {"field": "person.age", "op": "ge", "value": 16},
            {"field": "person.age", "op": "lt", "value": 16}]
        _rule(d, "rescued_woman_employment")["when"]["all"] = [
            {"field": "person.sex", "op": "eq", "value": "woman"}]
        _rule(d, "missing_child_rapid_search")["when"] = {
            "kind": "child_missing_reported", "all": [{"field": "person.age", "op": "ge", "value": 18}]}

    _edit(folder, "xx_city", contradict)
    _edit(folder, "shandong", lambda d: _rule(d, "sentencing").update(when={"kind": "sentencing", "all": [
        {"field": "person.sex", "value": "male"}, {"field": "person.is_child", "value": False}]}))
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


# ------------------------------------------------------------ naming quotes and the clause's words


@needs_seeds
def test_a_naming_quote_must_contain_the_units_name(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    # In the clause, but it names the police, not the railway.
    _edit(folder, "xian", lambda d: _rule(d, "transport_hubs_cooperate")["names"].update(
        railway="积极配合公安机关开展打击防范拐卖人口犯罪工作"))
    assert [str(p) for p in lint(folder, SEEDS)] == [
        "xian.yaml: rule transport_hubs_cooperate names.railway: quote does not name railway as "
        "the plan writes it (铁路): '积极配合公安机关开展打击防范拐卖人口犯罪工作'"]


@needs_seeds
def test_a_naming_quote_must_be_in_its_clause(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    _edit(folder, "xian", lambda d: _rule(d, "victim_registration")["names"].update(
        {"police.local_station": "由派出所建立档案"}))
    assert [str(p) for p in lint(folder, SEEDS)] == [
        "xian.yaml: rule victim_registration names.police.local_station: quote not in "
        "001_56bdd0a940e471fd.txt 第六条第七款: '由派出所建立档案'"]


@needs_seeds
def test_a_name_for_a_unit_the_rule_does_not_refer_to(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    _edit(folder, "xian", lambda d: _rule(d, "transport_interdiction")["names"].update(
        railway="要加强与交通运输部门沟通配合"))
    problems = [str(p) for p in lint(folder, SEEDS)]
    assert ("xian.yaml: rule transport_interdiction names.railway: names a unit that is neither "
            "lead nor cooperating") in problems


@needs_seeds
def test_action_zh_must_be_the_clauses_own_words(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    _edit(folder, "xian", lambda d: _rule(d, "abandoned_infant_dna").update(
        action_zh="严格弃婴认定程序；立即送往福利院"))
    assert [str(p) for p in lint(folder, SEEDS)] == [
        "xian.yaml: rule abandoned_infant_dna action_zh: not the clause's own words: '立即送往福利院'"]


@needs_seeds
def test_the_triage_quote_must_name_the_office(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    _edit(folder, "xx_city", lambda d: d["triage"]["source"].update(
        quote="市公安厅是反拐厅际联席会议牵头单位"))
    problems = [str(p) for p in lint(folder, SEEDS)]
    assert "xx_city.yaml: triage: quote does not name anti_trafficking_office (联席会议办公室)" in (
        problems)


# ------------------------------------------------------------------------------ coverage


@needs_seeds
def test_a_duty_clause_without_rule_or_reason_is_a_problem(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    _edit(folder, "yunyang", lambda d: d.update(
        not_routed=[n for n in d["not_routed"] if n["clause"] != "三、(六)2.(2)"]))
    assert [str(p) for p in lint(folder, SEEDS)] == [
        "yunyang.yaml: 三、(六)2.(2): assigns a duty (names court, police, procuratorate) but no "
        "rule routes it and not_routed gives no reason"]


@needs_seeds
def test_stale_and_unknown_reasons_are_problems(tmp_path: Path) -> None:
    folder = _copy_packs(tmp_path)
    _edit(folder, "yunyang", lambda d: d["not_routed"].extend([
        {"clause": "三、(三)2.(6)", "reason": "registration is not routed (stale)"},
        {"clause": "三、(九)", "reason": "a section the plan does not have"},
        {"clause": "一、(一) para 2", "reason": "the guiding thought assigns nothing"}]))
    assert sorted(str(p) for p in lint(folder, SEEDS)) == [
        "yunyang.yaml: not_routed '三、(九)' is no paragraph of 004_ab66e05e62b6cad7.txt (labels "
        "as `rules coverage` prints them)",
        "yunyang.yaml: 一、(一) para 2: listed in not_routed but assigns no duty",
        "yunyang.yaml: 三、(三)2.(6): listed in not_routed but routed by yunyang.victim_registration",
    ]


@needs_seeds
def test_every_duty_clause_of_every_seed_is_routed_or_explained() -> None:
    from rules.coverage import coverage
    from rules.engine import load_packs

    results = coverage(load_packs(), SEEDS)
    assert {c.seed for c in results} == {p.name for p in SEEDS.glob("*.txt")}
    for cov in results:
        assert cov.problems == (), cov.problems
        assert not cov.unexplained
        assert len(cov.covered) + len(cov.not_routed) == len(cov.duty_clauses) > 0


@needs_seeds
def test_coverage_cli_prints_each_clause_and_fails_on_an_unexplained_one(tmp_path: Path) -> None:
    result = runner.invoke(app, ["coverage", "-j", "yunyang", "--seeds", str(SEEDS)])
    assert result.exit_code == 0, result.output
    assert "yunyang (004_ab66e05e62b6cad7.txt): 59 clauses assign a duty" in result.output
    assert "routed      三、(二)2.(1)——4" in result.output
    assert "yunyang.missing_child_rapid_search" in result.output
    assert "not routed  三、(六)2.(2)" in result.output and "research, no event" in result.output
    folder = _copy_packs(tmp_path)
    _edit(folder, "yunyang", lambda d: d.update(not_routed=d["not_routed"][1:]))
    result = runner.invoke(app, ["coverage", "-j", "yunyang", "--packs", str(folder),
                                 "--seeds", str(SEEDS)])
    assert result.exit_code == 1
    assert "UNEXPLAINED 二、 para 3" in result.output


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


@needs_seeds
def test_every_paragraph_label_resolves_to_its_paragraph() -> None:
    for path in sorted(SEEDS.glob("*.txt")):
        seed = load_seed(SEEDS, path.name)
        labels = [p.label for p in seed.paragraphs()]
        assert len(labels) == len(set(labels)), path.name
        for p in seed.paragraphs():
            assert seed.clause_text(p.label).split("\n")[0] == p.text, (path.name, p.label)


@needs_seeds
@pytest.mark.parametrize(("file", "label", "starts"), [
    ("000_7dbaf2c26904eceb.txt", "第十五条第二款", "公安机关、人民检察院"),
    ("000_7dbaf2c26904eceb.txt", "第四十五条", "第四十五条 公安机关要落实"),
    ("001_56bdd0a940e471fd.txt", "第六条第七款", "公安机关要加强对被解救人员的登记"),
    ("002_91d53b139879ca8f.txt", "二、(一)2.(2)——3", "——加强拐卖妇女儿童犯罪活动重点地区计划生育"),
    ("002_91d53b139879ca8f.txt", "一、 para 2", "各级政府、反拐工作协调机制成员单位"),
    ("003_a8bbf767012b485e.txt", "二、二是", "二是强调共同参与"),
    ("004_ab66e05e62b6cad7.txt", "三、(二)2.(1)——4", "——严格执行儿童失踪快速查找机制"),
    ("004_ab66e05e62b6cad7.txt", "二、 para 2", "我县实行反对拐卖妇女儿童行动工作联席会议"),
])
def test_paragraph_labels(file: str, label: str, starts: str) -> None:
    found = {p.label: p.text for p in load_seed(SEEDS, file).paragraphs()}
    assert found[label].startswith(starts)


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
