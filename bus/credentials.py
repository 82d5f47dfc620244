"""Who may publish or sign in: agency tokens (stored hashed) and which kinds each agency may publish.

Shared by the intake (bearer tokens) and the console (signing in with an agency token).

Tokens look like `rb_<token_id>_<secret>`; the file keeps, per token id, a random salt and the
scrypt hash of the secret, so a leaked file does not leak a token. Verified tokens are cached
by their sha256 in memory, because scrypt is deliberately slow and a reporter's outbox may send
hundreds of events in a burst.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rules.catalog import catalog

_TOKEN = re.compile(r"^rb_(?P<id>[a-z0-9]{6,32})_(?P<secret>[A-Za-z0-9_-]{16,128})$")
# scrypt cost: ~15 ms per check on these machines, paid once per token per process (cache).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class CredentialsError(ValueError):
    """The credentials file is unreadable or inconsistent."""


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9]{6,32}$")
    salt: str = Field(description="hex")
    scrypt: str = Field(description="hex scrypt(secret, salt)")
    note: str = ""


class AgencyCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agency: str
    tokens: tuple[TokenEntry, ...]


class CredentialsFile(BaseModel):
    """The file as written (`deploy/intake-credentials.yaml`), validated at load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # kind -> agency codes (or `code.*` for an agency and its sub-units) allowed to publish it.
    restricted_kinds: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    agencies: tuple[AgencyCredentials, ...]

    @model_validator(mode="after")
    def _codes_known(self) -> CredentialsFile:
        known = catalog().agencies
        ids: set[str] = set()
        for entry in self.agencies:
            if entry.agency not in known:
                raise ValueError(f"unknown agency code {entry.agency!r}")
            for t in entry.tokens:
                if t.id in ids:
                    raise ValueError(f"token id {t.id!r} appears twice")
                ids.add(t.id)
        for kind, allowed in self.restricted_kinds.items():
            if kind not in catalog().event_kinds:
                raise ValueError(f"restricted_kinds: unknown event kind {kind!r}")
            for pattern in allowed:
                if pattern.removesuffix(".*") not in known:
                    raise ValueError(f"restricted_kinds.{kind}: unknown agency {pattern!r}")
        return self


def hash_secret(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT).hex()


def new_token() -> tuple[str, TokenEntry]:
    """A fresh token and the entry to store for it (the token itself is shown once)."""
    # A leading letter: an all-digit hex id ("12438072") would come back from YAML as an int.
    token_id = "t" + secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)
    salt = os.urandom(16)
    return f"rb_{token_id}_{secret}", TokenEntry(id=token_id, salt=salt.hex(), scrypt=hash_secret(secret, salt))


def token_id(token: str) -> str | None:
    """The id part of a well-formed token (`rb_<id>_<secret>`), else None."""
    match = _TOKEN.match(token)
    return match["id"] if match else None


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def agency_matches(agency: str, pattern: str) -> bool:
    """`police.*` matches police and every police sub-unit; a plain code matches itself."""
    if pattern.endswith(".*"):
        base = pattern[:-2]
        return agency == base or agency.startswith(base + ".")
    return agency == pattern


@dataclass(frozen=True)
class Principal:
    """An authenticated agency."""

    agency: str
    token_id: str


@dataclass
class Credentials:
    """Token verification and the kind policy, built once from the file."""

    source: CredentialsFile
    _by_id: dict[str, tuple[str, TokenEntry]] = field(init=False)
    _verified: dict[bytes, Principal] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._by_id = {t.id: (a.agency, t) for a in self.source.agencies for t in a.tokens}

    @classmethod
    def load(cls, path: Path) -> Credentials:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls(CredentialsFile.model_validate(raw))
        except OSError as exc:
            raise CredentialsError(f"cannot read {path}: {exc.strerror}") from exc
        except (yaml.YAMLError, ValidationError) as exc:
            raise CredentialsError(f"invalid credentials file {path}: {exc}") from exc

    def authenticate(self, token: str) -> Principal | None:
        """The agency a token belongs to, or None (unknown, malformed or wrong secret)."""
        cached = self.cached(token)
        if cached is not None:
            return cached
        candidate = self.candidate(token)
        return self.verify(token, candidate) if candidate is not None else None

    def cached(self, token: str) -> Principal | None:
        """The agency of a token already verified by this process (no scrypt)."""
        return self._verified.get(_token_digest(token))

    def candidate(self, token: str) -> TokenEntry | None:
        """The entry a well-formed token names, if its id is known (its secret still unchecked)."""
        match = _TOKEN.match(token)
        if match is None or match["id"] not in self._by_id:
            return None
        return self._by_id[match["id"]][1]

    def verify(self, token: str, entry: TokenEntry) -> Principal | None:
        """The full scrypt check of a token's secret against its entry (slow on purpose)."""
        match = _TOKEN.match(token)
        if match is None or match["id"] != entry.id:
            return None
        computed = hash_secret(match["secret"], bytes.fromhex(entry.salt))
        if not hmac.compare_digest(computed, entry.scrypt):
            return None
        principal = Principal(self._by_id[entry.id][0], entry.id)
        self._verified[_token_digest(token)] = principal
        return principal

    def may_publish(self, agency: str, kind: str) -> bool:
        """Restricted kinds (a broadcast release, a case resolution) only from the listed agencies."""
        allowed = self.source.restricted_kinds.get(kind)
        return allowed is None or any(agency_matches(agency, p) for p in allowed)
