"""The contract's version moves whenever the contract does: schemas/contract-history.yaml records
each version with the digest of its contract, and the document's version is the last one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.contract import JSON_DIR, published, schemas
from topics import asyncapi, contract_history
from topics.contract_history import ContractHistory, HistoryError

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def highest_schema_major() -> int:
    return max(p.major for p in published().values())


def history(*entries: dict[str, Any]) -> ContractHistory:
    return ContractHistory.model_validate({"versions": list(entries)})


def entry(version: str, date: str = "2026-12-07", digest: str = DIGEST) -> dict[str, Any]:
    return {"version": version, "date": date, "changes": "something outside systems see", "digest": digest}


def test_the_last_entry_of_the_history_records_the_contract_as_the_code_generates_it() -> None:
    found = contract_history.problems(contract_history.load(), asyncapi.digest(), highest_schema_major())
    assert found == [], "\n\n".join(found)


def test_the_document_s_version_and_changes_are_the_history_s() -> None:
    recorded = contract_history.load()
    info = asyncapi.document()["info"]
    assert info["version"] == recorded.current.version
    assert [c["version"] for c in info["x-changes"]] == [v.version for v in reversed(recorded.versions)]
    published_info = yaml.safe_load(asyncapi.ASYNCAPI_PATH.read_text(encoding="utf-8"))["info"]
    assert published_info["version"] == recorded.current.version


def test_the_digest_of_the_published_files_read_back_is_the_digest_of_the_generated_contract() -> None:
    # An outside system holding a copy of the documents gets the same digest: the canonical form
    # does not depend on the YAML layout.
    document = yaml.safe_load(asyncapi.ASYNCAPI_PATH.read_text(encoding="utf-8"))
    files = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(JSON_DIR.glob("*.schema.json"))}
    assert contract_history.digest(document, files) == asyncapi.digest()


def test_the_digest_leaves_out_only_what_the_document_takes_from_the_history() -> None:
    document = asyncapi.unversioned()
    files = {f"{stem}.schema.json": schema for stem, schema in schemas().items()}
    before = contract_history.digest(document, files)
    assert before == asyncapi.digest()

    versioned = asyncapi.document(history(entry("1.0.0"), entry("7.3.1")))
    assert versioned["info"]["version"] == "7.3.1"
    assert contract_history.digest(versioned, files) == before

    described = copy.deepcopy(document)
    described["channels"]["events_inbound"]["description"] += " Now with more words."
    assert contract_history.digest(described, files) != before

    a_new_value = copy.deepcopy(files)
    codes = a_new_value["refused_answer.schema.json"]["properties"]["reason"]["enum"]
    codes.append("a_new_reason")
    assert contract_history.digest(document, a_new_value) != before

    a_new_topic = copy.deepcopy(document)
    a_new_topic["channels"]["refusals_agency"] = {"address": "refusals.{agency}"}
    assert contract_history.digest(a_new_topic, files) != before


def test_a_changed_contract_tells_the_developer_which_entry_to_add() -> None:
    (found,) = contract_history.problems(history(entry("1.2.3")), OTHER, 1)
    assert f"digest: {OTHER}" in found
    assert "version: 2.0.0 | 1.3.0 | 1.2.4" in found
    assert "MAJOR (2.0.0)" in found and "removed, renamed or tightened" in found
    assert "MINOR (1.3.0)" in found and "enum value" in found
    assert "PATCH (1.2.4)" in found and "descriptions" in found
    assert "referral-bus contract export" in found
    assert contract_history.problems(history(entry("1.2.3", digest=OTHER)), OTHER, 1) == []


def test_a_message_schema_s_major_above_the_contract_s_is_refused() -> None:
    (found,) = contract_history.problems(history(entry("1.4.0")), DIGEST, 2)
    assert "major 1, below the highest major of a message schema (2)" in found
    assert contract_history.problems(history(entry("2.0.0")), DIGEST, 2) == []
    assert contract_history.problems(history(entry("3.0.0")), DIGEST, 2) == []


def test_the_recorded_history_is_well_formed() -> None:
    recorded = contract_history.load()
    assert recorded.current.major >= highest_schema_major()
    assert recorded.versions[0].version == "1.0.0"


@pytest.mark.parametrize(("versions", "says"), [
    ([], "versions: Tuple should have at least 1 item"),
    ([entry("1.0.0"), entry("1.0.0")], "version 1.0.0 does not come after 1.0.0"),
    ([entry("1.1.0"), entry("1.0.9")], "version 1.0.9 does not come after 1.1.0"),
    ([entry("1.9.0"), entry("1.10.0", date="2026-12-06")], "version 1.10.0 is dated 2026-12-06, before 1.9.0"),
    ([entry("1.0")], "versions.0.version: String should match pattern"),
    ([entry("01.0.0")], "versions.0.version: String should match pattern"),
    ([entry("1.0.0", date="07/12/2026")], "versions.0.date: Value error, not an ISO date (YYYY-MM-DD)"),
    ([entry("1.0.0", date="2026-12-07T00:00:00Z")], "versions.0.date: Value error, not an ISO date"),
    ([{**entry("1.0.0"), "date": 1765065600}], "versions.0.date: Value error, not an ISO date"),
    ([entry("1.0.0", date="2026-02-30")], "versions.0.date: Input should be a valid date"),
    ([entry("1.0.0", digest="sha256:abc")], "versions.0.digest: String should match pattern"),
    ([{**entry("1.0.0"), "changes": "  "}], "versions.0.changes: String should have at least 1 character"),
    ([{**entry("1.0.0"), "author": "me"}], "versions.0.author: Extra inputs are not permitted"),
])
def test_a_history_that_is_not_well_formed_is_refused_with_where_and_why(
        tmp_path: Path, versions: list[dict[str, Any]], says: str) -> None:
    path = tmp_path / "contract-history.yaml"
    path.write_text(yaml.safe_dump({"versions": versions}), encoding="utf-8")
    with pytest.raises(HistoryError, match=r"contract-history\.yaml") as refused:
        contract_history.load(path)
    assert says in str(refused.value)


def test_a_history_s_dates_are_read_as_yaml_writes_them_or_as_iso_text(tmp_path: Path) -> None:
    path = tmp_path / "contract-history.yaml"
    path.write_text("versions:\n"
                    f"  - {{version: 1.0.0, date: 2026-12-07, changes: first, digest: '{DIGEST}'}}\n"
                    f"  - {{version: 1.1.0, date: '2026-12-08', changes: second, digest: '{OTHER}'}}\n",
                    encoding="utf-8")
    recorded = contract_history.load(path)
    assert [v.date.isoformat() for v in recorded.versions] == ["2026-12-07", "2026-12-08"]
    assert recorded.current.digest == OTHER


def test_a_history_yaml_cannot_read_is_refused_with_where_and_why(tmp_path: Path) -> None:
    path = tmp_path / "contract-history.yaml"
    path.write_text(f"versions:\n  - {{version: 1.0.0, date: 2026-02-30, changes: x, digest: '{DIGEST}'}}\n",
                    encoding="utf-8")
    with pytest.raises(HistoryError, match=r"contract-history\.yaml: day is out of range"):
        contract_history.load(path)
    with pytest.raises(HistoryError, match=r"missing\.yaml: .*No such file"):
        contract_history.load(tmp_path / "missing.yaml")
    path.write_text("versions: [", encoding="utf-8")
    with pytest.raises(HistoryError, match=r"contract-history\.yaml: "):
        contract_history.load(path)
