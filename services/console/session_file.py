"""Officers' console sessions on disk (`STATE_DIR/console/sessions.sqlite`), so that restarting the
console (a deploy, a crash, a reboot) does not sign out every desk in the middle of an alert.

The file is a copy of what `auth.Sessions` decides, never a source of decisions: a row holds the
SHA-256 of the session id (a copied file gives no usable cookie), the officer's id, agency and
jurisdictions as signed in (checked again against the officers file when read), a digest of the
officer's credentials entry (a reset password ends the session), the CSRF token (useless without
the cookie; an open page keeps the one it read from `/api/me`), and the times. Reporters' agency
tokens are never written here: their sessions stay in memory.

A file that cannot be opened, read or written never stops the console: it is logged (the SQLite
error's name, no personal data), counted in `referral_bus_console_session_file_errors_total`, and
the console keeps its sessions in memory from then on, as it did before this file existed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

log = structlog.get_logger("console")

#: Where the file failed: when the console opened it, or in use later (memory from then on).
Stage = Literal["open", "use"]


@dataclass(frozen=True)
class SavedSession:
    """One officer's session as kept on disk (`digest` is the SHA-256 of its id, hex)."""

    digest: str
    officer_id: str
    agency: str
    jurisdictions: tuple[str, ...] | None
    credential: str
    csrf: str
    created: float
    last_seen: float


class SessionFile:
    """The SQLite file of officers' sessions. Every method swallows SQLite and OS errors after
    reporting them once through `on_error`: the console then carries on in memory."""

    def __init__(self, db: sqlite3.Connection, on_error: Callable[[Stage], None]) -> None:
        self._db: sqlite3.Connection | None = db
        self._on_error = on_error
        # FastAPI runs plain `def` routes in a thread pool: one statement at a time.
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, on_error: Callable[[Stage], None]) -> SessionFile | None:
        """The file at `path` (created 0600 if missing), or None when it cannot be used."""
        db = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Created owner-only before SQLite opens it; SQLite gives its -wal and -shm files the
            # database file's permissions.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
            path.chmod(0o600)
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a commit survives the console being killed; a power cut may lose the last
            # sign-ins, whose officers sign in again.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                """CREATE TABLE IF NOT EXISTS sessions (
                     digest TEXT PRIMARY KEY, officer_id TEXT NOT NULL, agency TEXT NOT NULL,
                     jurisdictions TEXT, credential TEXT NOT NULL, csrf TEXT NOT NULL,
                     created REAL NOT NULL, last_seen REAL NOT NULL)""")
            db.execute("SELECT count(*) FROM sessions").fetchone()
        except (sqlite3.Error, OSError, ValueError) as exc:
            if db is not None:
                db.close()
            _report(exc, "open")
            on_error("open")
            return None
        return cls(db, on_error)

    def saved(self) -> list[SavedSession]:
        """Every session on disk whose row can be read (an unreadable row is dropped)."""
        rows = self._run("SELECT digest, officer_id, agency, jurisdictions, credential, csrf, created, last_seen "
                         "FROM sessions")
        out = []
        for digest, officer_id, agency, jurisdictions, credential, csrf, created, last_seen in rows:
            try:
                scope = json.loads(jurisdictions) if jurisdictions is not None else None
                out.append(SavedSession(str(digest), str(officer_id), str(agency),
                                        tuple(str(j) for j in scope) if scope is not None else None,
                                        str(credential), str(csrf), float(created), float(last_seen)))
            except (ValueError, TypeError):
                self.forget(str(digest))
        return out

    def keep(self, s: SavedSession) -> None:
        scope = json.dumps(list(s.jurisdictions)) if s.jurisdictions is not None else None
        self._run("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (s.digest, s.officer_id, s.agency, scope, s.credential, s.csrf, s.created, s.last_seen))

    def touch(self, digest: str, last_seen: float) -> None:
        self._run("UPDATE sessions SET last_seen = ? WHERE digest = ?", (last_seen, digest))

    def forget(self, *digests: str) -> None:
        for digest in digests:
            self._run("DELETE FROM sessions WHERE digest = ?", (digest,))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._db is None:
                return []
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                # The disk is full, the file was damaged or removed: memory from now on.
                failure = exc
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
        _report(failure, "use")
        self._on_error("use")
        return []


def _report(exc: Exception, stage: Stage) -> None:
    # The error's name only: SQLite's messages carry no personal data, but a row's content might.
    log.warning("console_sessions_in_memory_only", stage=stage, error=type(exc).__name__,
                code=getattr(exc, "sqlite_errorname", None) or getattr(exc, "strerror", None))
