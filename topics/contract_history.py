"""The contract's version: a recorded history, checked against the generated contract's digest.

Outside systems pin against the AsyncAPI document's `info.version`. It is the last version of
schemas/contract-history.yaml, never computed from the message schemas: adding a topic, a
message at 1.0 or an enum value changes the contract and moves no message's own version. Each
entry keeps the digest of the contract it names, and a test fails as soon as the generated
contract's digest is no longer the last entry's, telling the developer which entry to add.

The digest is the sha256 of the contract's canonical form: one JSON object
`{"asyncapi": <the document>, "json": {<file name>: <schema>, ...}}`, the document without what
it takes from this history (`info.version`, `info.x-changes`), written with sorted keys, no
spaces (`separators=(",", ":")`), non-ASCII characters as themselves, UTF-8. It is computed
from the generated dicts, and the published files read back (YAML and JSON) give the same
bytes, so it does not move with the YAML renderer's layout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from schemas.contract import JSON_DIR

HISTORY_PATH = JSON_DIR.parent / "contract-history.yaml"
#: What the document takes from this history, and so leaves out of its own digest (else adding
#: an entry would change the digest it records).
FROM_HISTORY = ("version", "x-changes")

#: How the version moves: which part for which change.
MOVES = {
    "MAJOR": "a message schema's major moves, or something is removed, renamed or tightened: "
             "a field now required, a value no longer accepted",
    "MINOR": "additions: a topic, a message, an optional field, an enum value",
    "PATCH": "descriptions and examples only",
}

Semver = Annotated[str, StringConstraints(pattern=r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")]
Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


def _iso_date(value: Any) -> Any:
    """A date as YAML reads `2026-12-07`, or that text quoted; not a time, not a number (which a
    lax date would take as seconds since 1970)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return value
    raise ValueError("not an ISO date (YYYY-MM-DD)")


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]


class HistoryError(ValueError):
    """The history file cannot be read, or is not well-formed (the message says where)."""


class ContractVersion(BaseModel):
    """One published version of the contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Semver
    date: IsoDate
    changes: Text = Field(description="What changed, for outside systems.")
    digest: Digest

    @property
    def semver(self) -> tuple[int, int, int]:
        major, minor, patch = (int(part) for part in self.version.split("."))
        return major, minor, patch

    @property
    def major(self) -> int:
        return self.semver[0]


class ContractHistory(BaseModel):
    """Every version of the contract, oldest first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    versions: tuple[ContractVersion, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _in_order(self) -> ContractHistory:
        for before, after in zip(self.versions, self.versions[1:], strict=False):
            if after.semver <= before.semver:
                raise ValueError(f"version {after.version} does not come after {before.version}: "
                                 "versions must strictly increase")
            if after.date < before.date:
                raise ValueError(f"version {after.version} is dated {after.date}, before {before.version} "
                                 f"({before.date})")
        return self

    @property
    def current(self) -> ContractVersion:
        return self.versions[-1]


def load(path: Path = HISTORY_PATH) -> ContractHistory:
    """The history file, validated (an error names the entry and the field)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ContractHistory.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise HistoryError(f"{path}: {errors}") from exc
    except (OSError, yaml.YAMLError, ValueError) as exc:  # ValueError: YAML's own date 2026-02-30
        raise HistoryError(f"{path}: {exc}") from exc


def canonical(document: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> bytes:
    """The contract's canonical bytes: `schemas` by file name; `document` with or without the
    fields it takes from the history (they are left out either way)."""
    info = {k: v for k, v in document["info"].items() if k not in FROM_HISTORY}
    contract = {"asyncapi": {**document, "info": info}, "json": schemas}
    return json.dumps(contract, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def digest(document: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> str:
    return "sha256:" + hashlib.sha256(canonical(document, schemas)).hexdigest()


def changes(history: ContractHistory) -> list[dict[str, str]]:
    """The history as the document publishes it (`info.x-changes`), newest first."""
    return [{"version": v.version, "date": v.date.isoformat(), "changes": v.changes}
            for v in reversed(history.versions)]


def _shown(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def problems(history: ContractHistory, current_digest: str, highest_schema_major: int,
             path: Path = HISTORY_PATH) -> list[str]:
    """What keeps `history` from naming the contract as it is generated now, each with what to do."""
    last = history.current
    out = []
    if last.major < highest_schema_major:
        out.append(f"the contract's version {last.version} has major {last.major}, below the highest major "
                   f"of a message schema ({highest_schema_major}): a message schema's major moved, so the "
                   f"contract's major must move too (add {highest_schema_major}.0.0 or higher)")
    if current_digest != last.digest:
        major, minor, patch = last.semver
        out.append(
            f"the contract changed since {last.version}: its digest is {current_digest}, the last entry of "
            f"{path.name} records {last.digest}. Add an entry at the end of {_shown(path)}:\n"
            f"  - version: {major + 1}.0.0 | {major}.{minor + 1}.0 | {major}.{minor}.{patch + 1}\n"
            f"    date: {dt.date.today().isoformat()}\n"
            "    changes: what changed, in words for outside systems\n"
            f"    digest: {current_digest}\n"
            f"MAJOR ({major + 1}.0.0): {MOVES['MAJOR']};\n"
            f"MINOR ({major}.{minor + 1}.0): {MOVES['MINOR']};\n"
            f"PATCH ({major}.{minor}.{patch + 1}): {MOVES['PATCH']}.\n"
            "Then run `referral-bus contract export` (the document's info.version is the last entry's).")
    return out
