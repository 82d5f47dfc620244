"""`referral-bus route`: the dry-run contract rule writers and external checks rely on."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from schemas.referrals import Referral
from services.cli import app

from .test_schemas import NURSE_REPORT

runner = CliRunner()


def route(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["route", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_one_event_prints_one_json_referral_per_line() -> None:
    code, out, _ = route("-", stdin=json.dumps(NURSE_REPORT))
    assert code == 0
    referrals = [Referral.model_validate_json(line) for line in out.splitlines()]
    assert referrals, "a nurse's report in 云阳 must be referred"
    assert {r.agency for r in referrals if r.role == "lead"} >= {"police"}
    assert all(r.event_id.hex == NURSE_REPORT["event_id"].replace("-", "") for r in referrals)
    assert all(r.citation.file == "004_ab66e05e62b6cad7.txt" or r.decided_by != "yunyang" for r in referrals)


def test_output_is_deterministic_and_json_lines_are_accepted(tmp_path: Path) -> None:
    second = {**NURSE_REPORT, "event_id": "0b8e1f7a-3c2d-4e5f-8a9b-1c2d3e4f5a6b", "jurisdiction": "xian"}
    source = tmp_path / "events.jsonl"
    source.write_text(json.dumps(NURSE_REPORT) + "\n" + json.dumps(second) + "\n")
    first_run, again = route(str(source)), route(str(source))
    assert first_run[0] == 0 and first_run[1] == again[1]
    event_ids = [json.loads(line)["event_id"] for line in first_run[1].splitlines()]
    assert set(event_ids) == {NURSE_REPORT["event_id"], second["event_id"]}


def test_invalid_input_exits_2_naming_the_field_and_the_reason() -> None:
    code, out, err = route("-", stdin=json.dumps({**NURSE_REPORT, "person": {"age": 200}}))
    assert code == 2 and out == ""
    assert "person.age" in err and "less than or equal to 130" in err


def test_line_numbers_point_at_the_bad_line(tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(json.dumps(NURSE_REPORT) + "\n{oops\n")
    code, _, err = route(str(source))
    assert code == 2 and "line 2" in err


def test_a_missing_file_is_a_clear_error() -> None:
    code, _, err = route("/nonexistent/event.json")
    assert code == 2 and "cannot read /nonexistent/event.json" in err


def test_explain_shows_the_deciding_article() -> None:
    code, out, _ = route("--explain", "-", stdin=json.dumps(NURSE_REPORT))
    assert code == 0
    assert "三、(一)2.(3)" in out


def test_explain_names_every_referred_unit_with_the_plans_words() -> None:
    """For every referral: the clause and the verbatim quote naming that unit as the plan writes
    it; after 2020 the 云阳 clause is shown as context, the plan in force routes the report."""
    from rules.catalog import catalog
    from rules.coverage import names_unit

    in_period = {**NURSE_REPORT, "occurred_at": "2018-11-20T08:00:00+08:00",
                 "reported_at": "2018-11-20T08:20:00+08:00"}
    for event in (NURSE_REPORT, in_period):
        code, out, _ = route("--explain", "-", stdin=json.dumps(event))
        assert code == 0
        lines = out.split("\nreferrals:\n")[1].splitlines()
        heads = [i for i, line in enumerate(lines) if line.startswith(("  lead ", "  cooperating "))]
        referrals = [Referral.model_validate_json(line) for line in out.splitlines()
                     if line.startswith("{")]
        assert heads and len(heads) == len(referrals)
        for i, referral in zip(heads, referrals, strict=True):
            assert lines[i].split()[1] == referral.agency
            named = next(line for line in lines[i + 1:i + 4] if "named in " in line)
            quote = named.split("「")[1].rstrip("」")
            # The unit's own name, or the name of the abolished unit it succeeds (卫生局 …).
            assert names_unit(quote, referral.agency) or any(
                names_unit(quote, old) for old, a in catalog().agencies.items()
                if referral.agency in a.successors), (referral.agency, quote)
    assert "plan period:" in route("--explain", "-", stdin=json.dumps(NURSE_REPORT))[1]
    in_period_out = route("--explain", "-", stdin=json.dumps(in_period))[1]
    assert "plan period:" not in in_period_out and "named in 004_ab66e05e62b6cad7.txt" in in_period_out
