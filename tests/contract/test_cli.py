"""`referral-bus contract check` and `topics list` as an outside system's engineer uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bus.demo_events import scripted_events
from topics.catalog import all_topics

CLI = [str(Path(sys.executable).parent / "referral-bus")]


def run(*args: str, stdin: str = "", columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb"}
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def test_topics_list_never_cuts_a_topic_name_at_80_columns() -> None:
    out = run("topics", "list").stdout
    words = set(out.split())
    for topic in all_topics():
        assert topic.name in words, f"{topic.name} cut or missing in `topics list`"
    assert max(len(line) for line in out.splitlines()) <= 80


def test_check_accepts_the_demo_events_as_json_lines() -> None:
    lines = "\n".join(json.dumps(e, ensure_ascii=False) for e in scripted_events())
    done = run("contract", "check", "-", stdin=lines)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == [w for n in range(1, 6) for w in (f"{n}:", "ok")]


def test_check_names_each_failing_field_and_exits_1(tmp_path: Path) -> None:
    bad = {**scripted_events()[2], "occurred_at": 1763596800, "exercise": "true"}
    path = tmp_path / "events.json"
    path.write_text(json.dumps([scripted_events()[1], bad]), encoding="utf-8")
    done = run("contract", "check", str(path), "--json")
    assert done.returncode == 1
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert first == {"position": 0, "ok": True, "errors": []}
    assert {e["field"] for e in second["errors"]} == {"occurred_at", "exercise"}


def test_check_reads_a_topic_family_and_refuses_an_unknown_topic() -> None:
    answer = {"referral_id": "6f1c2a4e-8d2b-4c4e-9f61-0c1d2e3f4a5b", "answer": "done", "note": " \t"}
    done = run("contract", "check", "-", "--topic", "answers.referrals", "--json", stdin=json.dumps(answer))
    assert done.returncode == 1 and json.loads(done.stdout)["errors"][0]["field"] == "note"
    assert run("contract", "check", "-", "--topic", "referrals.nasa", stdin="{}").returncode == 2
    referral_check = run("contract", "check", "-", "--topic", "referrals.police.command_center", stdin="{}")
    assert referral_check.returncode == 1 and "missing" in referral_check.stdout


def test_check_refuses_what_is_not_standard_json() -> None:
    done = run("contract", "check", "-", "--json", stdin='{"event_id": NaN}\n')
    assert done.returncode == 1
    assert json.loads(done.stdout)["errors"] == [{"field": "(message)", "reason": "not valid JSON"}]


def test_check_reads_a_cap_channel_as_xml_against_the_published_xsd() -> None:
    import yaml

    from topics.asyncapi import ASYNCAPI_PATH

    doc = yaml.safe_load(ASYNCAPI_PATH.read_text(encoding="utf-8"))
    cap = doc["components"]["messages"]["CapAlertXml"]["examples"][0]["payload"]
    assert run("contract", "check", "-", "--topic", "broadcast.media", stdin=cap).returncode == 0
    wrong = run("contract", "check", "-", "--topic", "broadcast.media", "--json",
                stdin=cap.replace("<status>Actual", "<status>Real"))
    assert wrong.returncode == 1
    assert "status" in json.loads(wrong.stdout)["errors"][0]["field"]


def test_digest_prints_the_contract_s_digest_and_the_version_that_records_it() -> None:
    from topics import asyncapi, contract_history

    done = run("contract", "digest")
    assert done.returncode == 0, done.stderr
    assert done.stdout == asyncapi.digest() + "\n"
    assert f"version {contract_history.load().current.version}" in done.stderr


def test_digest_says_which_entry_to_add_when_the_history_is_behind(tmp_path: Path) -> None:
    from topics import asyncapi

    behind = tmp_path / "contract-history.yaml"
    behind.write_text("versions:\n  - version: 1.4.2\n    date: 2026-12-07\n    changes: an older contract\n"
                      f"    digest: sha256:{'0' * 64}\n", encoding="utf-8")
    done = run("contract", "digest", "--history", str(behind))
    assert done.returncode == 1
    assert done.stdout == asyncapi.digest() + "\n"
    assert f"digest: {asyncapi.digest()}" in done.stderr
    assert "version: 2.0.0 | 1.5.0 | 1.4.3" in done.stderr and "MINOR (1.5.0): additions" in done.stderr


def test_digest_names_what_is_wrong_in_a_history_it_cannot_read(tmp_path: Path) -> None:
    broken = tmp_path / "contract-history.yaml"
    broken.write_text("versions:\n  - version: '1.0'\n    date: 2026-12-07\n    changes: x\n"
                      f"    digest: sha256:{'0' * 64}\n", encoding="utf-8")
    done = run("contract", "digest", "--history", str(broken))
    assert done.returncode == 2
    assert "versions.0.version" in done.stderr
