"""Tokens stored hashed, checked in constant time; the kind policy; the file validated at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.credentials import (
    Credentials,
    CredentialsError,
    agency_matches,
    new_token,
)
from services.intake.settings import DEFAULT_CREDENTIALS


def test_new_token_verifies_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    token, entry = new_token()
    path = tmp_path / "c.yaml"
    path.write_text(f"agencies:\n  - agency: education\n    tokens:\n      - id: {entry.id}\n"
                    f"        salt: {entry.salt}\n        scrypt: {entry.scrypt}\n")
    assert token.split("_", 2)[2] not in path.read_text()
    creds = Credentials.load(path)
    who = creds.authenticate(token)
    assert who is not None and who.agency == "education"
    assert creds.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert creds.authenticate("garbage") is None


@pytest.mark.parametrize(("text", "message"), [
    ("agencies:\n  - agency: ministry_of_magic\n    tokens: []\n", "unknown agency code"),
    ("restricted_kinds: {teleport: [police]}\nagencies: []\n", "unknown event kind"),
    ("restricted_kinds: {case_resolved: [wizards.*]}\nagencies: []\n", "unknown agency"),
    ("agencies: [", "invalid credentials file"),
])
def test_invalid_files_are_refused_at_load(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(CredentialsError, match=message):
        Credentials.load(path)


def test_restricted_kinds_from_the_checked_in_file() -> None:
    creds = Credentials.load(DEFAULT_CREDENTIALS)
    assert creds.may_publish("police.command_center", "missing_child_info_release")
    assert not creds.may_publish("health.designated_medical_institution", "case_resolved")
    assert creds.may_publish("education", "teacher_suspects_trafficking")


def test_agency_patterns() -> None:
    assert agency_matches("police", "police.*") and agency_matches("police.local_station", "police.*")
    assert not agency_matches("policeman", "police.*") and not agency_matches("police.x", "police")


def test_regression_new_token_ids_survive_a_yaml_round_trip() -> None:
    """An all-digit id (1 in ~40 draws of token_hex(4)) was read back from YAML as an int."""
    import yaml

    from bus.credentials import new_token

    for _ in range(200):
        _, entry = new_token()
        assert yaml.safe_load(f"id: {entry.id}")["id"] == entry.id
