"""Who is at the desk: officers (one credentials-file entry per person) or an agency token plus the
person's name, turned into a server-side session with a CSRF token, that expires.

The officers file keeps, per officer, a random salt and the scrypt hash of the password (the same
hashing as agency tokens, `bus.credentials.hash_secret`), so a leaked file leaks no password.
The session id lives in an HttpOnly, SameSite=Strict cookie; every state-changing request also
carries the session's CSRF token in a header, which a page of another origin cannot read.

Officers' sessions are also kept on disk (`session_file.SessionFile`, by the SHA-256 of their id),
so a restarted console keeps its desks signed in; reporters' token sessions are not (their agency
token never goes to disk): they sign in again after a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bus.credentials import Credentials, hash_secret
from rules.catalog import catalog
from services.console.session_file import SavedSession, SessionFile

log = structlog.get_logger("console")

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


def session_digest(sid: str) -> str:
    """What the session file keys a session by: a copied file must give no usable cookie."""
    return hashlib.sha256(sid.encode()).hexdigest()


def credential_digest(officer: Officer) -> str:
    """Changes when the officer's entry is made anew (a reset password has a new salt and hash)."""
    return hashlib.sha256(f"{officer.salt}:{officer.scrypt}".encode()).hexdigest()


def _scope(officer: Officer) -> frozenset[str] | None:
    return frozenset(officer.jurisdictions) if officer.jurisdictions is not None else None


def restored(saved: SavedSession, officers: Mapping[str, Officer]) -> Session | None:
    """A session read back from disk, if its officer may still hold it: still in the officers file,
    with the same agency, jurisdictions and credentials entry; the name is the file's current one.
    Its `sid` is empty until the cookie names it (the file has only the digest)."""
    officer = officers.get(saved.officer_id)
    if (officer is None or officer.agency != saved.agency or credential_digest(officer) != saved.credential
            or _scope(officer) != (frozenset(saved.jurisdictions) if saved.jurisdictions is not None else None)):
        return None
    return Session(sid="", csrf=saved.csrf, agency=officer.agency, officer=f"{officer.name} ({officer.id})",
                   display=officer.name, via="officer", jurisdictions=_scope(officer), created=saved.created,
                   last_seen=saved.last_seen)


@dataclass
class Sessions:
    """Server-side sessions, in memory, and officers' sessions also in `store` (when given), which a
    restarted console reads back. Without a store a restart signs everyone out (they sign in
    again; answers already given are on the bus or in the outbox)."""

    officers: dict[str, Officer]
    agency_tokens: Credentials | None
    ttl_s: float
    idle_s: float
    clock: Clock = time.time
    store: SessionFile | None = None
    #: By `session_digest(sid)`: restored sessions are known by their digest only.
    _by_digest: dict[str, Session] = field(default_factory=dict)
    #: The `last_seen` each officer's session has on disk.
    _saved_seen: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # `last_seen` moves on every request but is written at most once a minute (a tenth of the
        # idle limit when that is shorter): a restarted console reads a `last_seen` at most that
        # much too early, so a restored session ends by idleness up to that much sooner, never later.
        self.touch_every_s = min(60.0, self.idle_s / 10)
        if self.store is not None:
            self._restore()

    def _restore(self) -> None:
        assert self.store is not None
        now, dropped = self.clock(), []
        for saved in self.store.saved():
            session = restored(saved, self.officers)
            if session is None or self._over(session, now):
                dropped.append(saved.digest)
            else:
                self._by_digest[saved.digest] = session
                self._saved_seen[saved.digest] = saved.last_seen
        self.store.forget(*dropped)
        log.info("console_sessions_restored", restored=len(self._by_digest), dropped=len(dropped))

    def sign_in_officer(self, officer_id: str, password: str) -> Session:
        officer = self.officers.get(officer_id)
        # Hash even for an unknown id, so the answer time does not tell which ids exist.
        salt = bytes.fromhex(officer.salt) if officer else b"\0" * 16
        computed = hash_secret(password, salt)
        if officer is None or not hmac.compare_digest(computed, officer.scrypt):
            raise SignInRefused
        session = self._new(officer.agency, f"{officer.name} ({officer.id})", officer.name, "officer",
                            _scope(officer))
        if self.store is not None:
            digest = session_digest(session.sid)
            self.store.keep(SavedSession(
                digest=digest, officer_id=officer.id, agency=officer.agency, jurisdictions=officer.jurisdictions,
                credential=credential_digest(officer), csrf=session.csrf, created=session.created,
                last_seen=session.last_seen))
            self._saved_seen[digest] = session.last_seen
        return session

    def token_id(self, token: str) -> str:
        """The id a well-formed agency token names, if it is one of ours (its secret unchecked), else "-"."""
        entry = self.agency_tokens.candidate(token) if self.agency_tokens is not None else None
        return entry.id if entry is not None else "-"

    def sign_in_token(self, token: str, name: str) -> Session:
        """An agency token (the intake's) and the name of the person using it. In memory only: the
        token is needed to publish the person's reports and must not be written to disk."""
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
        self._by_digest[session_digest(session.sid)] = session
        return session

    def get(self, sid: str | None, *, touch: bool = True) -> Session | None:
        """The live session of a cookie, or None (unknown, expired by age or idleness)."""
        if not sid:
            return None
        digest = session_digest(sid)
        session = self._by_digest.get(digest)
        if session is None:
            return None
        now = self.clock()
        if self._over(session, now):
            self._end(digest)
            return None
        if session.sid != sid:  # restored from disk: the cookie names it
            session = replace(session, sid=sid)
            self._by_digest[digest] = session
        if touch:
            session = replace(session, last_seen=now)
            self._by_digest[digest] = session
            saved_seen = self._saved_seen.get(digest)
            if self.store is not None and saved_seen is not None and now - saved_seen >= self.touch_every_s:
                self.store.touch(digest, now)
                self._saved_seen[digest] = now
        return session

    def sign_out(self, sid: str | None) -> None:
        if sid:
            self._end(session_digest(sid))

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(session.csrf.encode(), presented.encode())

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def _over(self, session: Session, now: float) -> bool:
        return now - session.created > self.ttl_s or now - session.last_seen > self.idle_s

    def _end(self, *digests: str) -> None:
        for digest in digests:
            self._by_digest.pop(digest, None)
            self._saved_seen.pop(digest, None)
        if self.store is not None and digests:
            self.store.forget(*digests)

    def _purge(self, now: float) -> None:
        self._end(*[digest for digest, s in list(self._by_digest.items()) if self._over(s, now)])
