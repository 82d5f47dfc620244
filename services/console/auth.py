"""Who is at the desk: officers (one credentials-file entry per person) or an agency token plus the
person's name, turned into a server-side session with a CSRF token, that expires.

The officers file keeps, per officer, a random salt and the scrypt hash of the password (the same
hashing as agency tokens, `bus.credentials.hash_secret`), so a leaked file leaks no password.
The session id lives in an HttpOnly, SameSite=Strict cookie; every state-changing request also
carries the session's CSRF token in a header, which a page of another origin cannot read.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bus.credentials import Credentials, hash_secret
from rules.catalog import catalog

Clock = Callable[[], float]


class OfficersError(ValueError):
    """The officers file is unreadable or inconsistent."""


class Officer(BaseModel):
    """One person who may sign in to the console for an agency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{2,31}$", description="The sign-in name.")
    name: str = Field(min_length=1, max_length=40, description="What answers record and desks show.")
    agency: str
    jurisdictions: tuple[str, ...] | None = Field(
        default=None, description="Only these jurisdictions' alerts and referrals (None: all of the agency's).")
    salt: str
    scrypt: str


class OfficersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    officers: tuple[Officer, ...]

    @model_validator(mode="after")
    def _known(self) -> OfficersFile:
        cat = catalog()
        seen: set[str] = set()
        for o in self.officers:
            if o.agency not in cat.agencies:
                raise ValueError(f"officer {o.id}: unknown agency code {o.agency!r}")
            for j in o.jurisdictions or ():
                if j not in cat.jurisdictions:
                    raise ValueError(f"officer {o.id}: unknown jurisdiction {j!r}")
            if o.id in seen:
                raise ValueError(f"officer id {o.id!r} appears twice")
            seen.add(o.id)
        return self


def officer_entry(officer_id: str, name: str, agency: str, password: str,
                  jurisdictions: tuple[str, ...] | None = None) -> Officer:
    """The entry to store for a new officer (the password itself is not stored)."""
    salt = os.urandom(16)
    return Officer(id=officer_id, name=name, agency=agency, jurisdictions=jurisdictions, salt=salt.hex(),
                   scrypt=hash_secret(password, salt))


def load_officers(path: Path) -> dict[str, Officer]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return {o.id: o for o in OfficersFile.model_validate(raw).officers}
    except OSError as exc:
        raise OfficersError(f"cannot read {path}: {exc.strerror}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise OfficersError(f"invalid officers file {path}: {exc}") from exc


@dataclass(frozen=True)
class Session:
    """A signed-in person at a desk. `token` is kept (server-side only) for reporters who signed in
    with their agency token: the report form publishes through the intake with it."""

    sid: str
    csrf: str
    agency: str
    officer: str  # recorded on every answer (ReferralResponse.officer)
    display: str
    via: Literal["officer", "token"]
    jurisdictions: frozenset[str] | None
    created: float
    last_seen: float
    token: str | None = field(default=None, repr=False)

    def sees(self, *jurisdictions: str) -> bool:
        """Whether the desk is scoped to one of these jurisdictions (or to all of the agency's)."""
        return self.jurisdictions is None or any(j in self.jurisdictions for j in jurisdictions)


class SignInRefused(Exception):
    """Unknown person, wrong password or token: one answer for all, so nobody learns which."""


@dataclass
class Sessions:
    """Server-side sessions, in memory: a restarted console signs everyone out (they sign in again;
    answers already given are on the bus or in the outbox)."""

    officers: dict[str, Officer]
    agency_tokens: Credentials | None
    ttl_s: float
    idle_s: float
    clock: Clock = time.time
    _by_id: dict[str, Session] = field(default_factory=dict)

    def sign_in_officer(self, officer_id: str, password: str) -> Session:
        officer = self.officers.get(officer_id)
        # Hash even for an unknown id, so the answer time does not tell which ids exist.
        salt = bytes.fromhex(officer.salt) if officer else b"\0" * 16
        computed = hash_secret(password, salt)
        if officer is None or not hmac.compare_digest(computed, officer.scrypt):
            raise SignInRefused
        return self._new(officer.agency, f"{officer.name} ({officer.id})", officer.name, "officer",
                         frozenset(officer.jurisdictions) if officer.jurisdictions is not None else None)

    def token_id(self, token: str) -> str:
        """The id a well-formed agency token names, if it is one of ours (its secret unchecked), else "-"."""
        entry = self.agency_tokens.candidate(token) if self.agency_tokens is not None else None
        return entry.id if entry is not None else "-"

    def sign_in_token(self, token: str, name: str) -> Session:
        """An agency token (the intake's) and the name of the person using it."""
        who = self.agency_tokens.authenticate(token) if self.agency_tokens is not None else None
        name = name.strip()
        if who is None or not name:
            raise SignInRefused
        return self._new(who.agency, f"{name[:40]} ({who.token_id})", name[:40], "token", None, token=token)

    def _new(self, agency: str, officer: str, display: str, via: Literal["officer", "token"],
             jurisdictions: frozenset[str] | None, token: str | None = None) -> Session:
        now = self.clock()
        session = Session(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), agency=agency,
                          officer=officer, display=display, via=via, jurisdictions=jurisdictions,
                          created=now, last_seen=now, token=token)
        self._purge(now)
        self._by_id[session.sid] = session
        return session

    def get(self, sid: str | None, *, touch: bool = True) -> Session | None:
        """The live session of a cookie, or None (unknown, expired by age or idleness)."""
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        now = self.clock()
        if now - session.created > self.ttl_s or now - session.last_seen > self.idle_s:
            self._by_id.pop(sid, None)
            return None
        if touch:
            session = replace(session, last_seen=now)
            self._by_id[sid] = session
        return session

    def sign_out(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(session.csrf.encode(), presented.encode())

    def _purge(self, now: float) -> None:
        for sid, s in list(self._by_id.items()):
            if now - s.created > self.ttl_s or now - s.last_seen > self.idle_s:
                del self._by_id[sid]
