"""The reporter's durable outbox: events are stored locally first, then sent until acknowledged.

Reporting agencies (a village cadre's laptop, a coach station's desk PC) are often offline. An
event is committed to SQLite (WAL, synchronous=FULL) before any network attempt, so it survives
a crash or a reboot; it leaves the pending state only when the intake answers 202 (sent) or
refuses it for good with a 4xx (rejected, kept with the reason). Resending is safe: the intake
answers a known `event_id` with its original result and publishes nothing new, so each event
is delivered exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Status = Literal["pending", "sent", "rejected"]


class OutboxError(ValueError):
    """The item cannot go in the outbox (not JSON, or no event_id to make resending safe)."""


@dataclass(frozen=True)
class Item:
    event_id: str
    body: bytes
    status: Status
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    last_error: str | None
    answer: str | None


def backoff_s(attempts: int, *, base: float = 1.0, cap: float = 60.0, jitter: float = 0.2,
              rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: 1, 2, 4 ... capped, so many outboxes don't retry in step."""
    delay: float = min(cap, base * (2 ** max(0, attempts - 1)))
    spread: float = (rng or random).uniform(-1, 1)
    return delay * (1 + jitter * spread)


class Outbox:
    """A SQLite outbox file. One writer process at a time is assumed (SQLite serialises anyway)."""

    def __init__(self, path: Path, *, id_field: str = "event_id") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # The field that makes resending safe: `event_id` for events; the console's answers
        # use `response_id` (the column keeps its historical name).
        self.id_field = id_field
        # check_same_thread=False: a web service may build it in one thread and use it from its event
        # loop's; every statement is one autocommit call, which SQLite serialises.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: the event is on disk when `add` returns, even across a power cut.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS outbox (
                 event_id TEXT PRIMARY KEY, body BLOB NOT NULL, status TEXT NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
                 next_attempt_at TEXT NOT NULL, last_error TEXT, answer TEXT)""")

    def add(self, body: bytes, now: dt.datetime | None = None) -> tuple[str, bool]:
        """Store an event; returns its id and whether it was new (the same id twice is one event)."""
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise OutboxError("not valid JSON") from exc
        event_id = obj.get(self.id_field) if isinstance(obj, dict) else None
        if not isinstance(event_id, str) or not event_id:
            raise OutboxError(f"the item has no {self.id_field} (needed to resend it safely)")
        at = (now or dt.datetime.now(dt.UTC)).isoformat()
        cur = self._db.execute(
            "INSERT OR IGNORE INTO outbox (event_id, body, status, created_at, next_attempt_at) "
            "VALUES (?, ?, 'pending', ?, ?)", (event_id, body, at, at))
        return event_id, cur.rowcount == 1

    def due(self, now: dt.datetime | None = None, limit: int = 100) -> list[Item]:
        """Pending items whose next attempt is due, oldest first (reports keep their order)."""
        at = (now or dt.datetime.now(dt.UTC)).isoformat()
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? "
            "ORDER BY created_at, rowid LIMIT ?", (at, limit)).fetchall()
        return [_item(r) for r in rows]

    def items(self, status: Status | None = None) -> list[Item]:
        sql = f"SELECT {_COLUMNS} FROM outbox"
        rows = (self._db.execute(sql + " WHERE status = ? ORDER BY created_at, rowid", (status,))
                if status else self._db.execute(sql + " ORDER BY created_at, rowid")).fetchall()
        return [_item(r) for r in rows]

    def counts(self) -> dict[str, int]:
        out = {"pending": 0, "sent": 0, "rejected": 0}
        for status, n in self._db.execute("SELECT status, count(*) FROM outbox GROUP BY status"):
            out[status] = n
        return out

    def next_due(self) -> dt.datetime | None:
        row = self._db.execute("SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'").fetchone()
        return dt.datetime.fromisoformat(row[0]) if row and row[0] else None

    def mark_sent(self, event_id: str, answer: str) -> None:
        self._db.execute("UPDATE outbox SET status = 'sent', answer = ?, last_error = NULL, "
                         "attempts = attempts + 1 WHERE event_id = ?", (answer, event_id))

    def mark_rejected(self, event_id: str, answer: str) -> None:
        """A permanent refusal (invalid, forbidden): kept for the reporter to fix and resend."""
        self._db.execute("UPDATE outbox SET status = 'rejected', answer = ?, attempts = attempts + 1 "
                         "WHERE event_id = ?", (answer, event_id))

    def mark_retry(self, event_id: str, error: str, next_attempt_at: dt.datetime) -> None:
        self._db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                         "WHERE event_id = ?", (error[:200], next_attempt_at.isoformat(), event_id))

    def requeue(self, event_id: str, body: bytes | None = None) -> bool:
        """Put a rejected item back (optionally with a fixed body, same event_id)."""
        now = dt.datetime.now(dt.UTC).isoformat()
        cur = self._db.execute(
            "UPDATE outbox SET status = 'pending', body = coalesce(?, body), next_attempt_at = ?, "
            "answer = NULL WHERE event_id = ? AND status = 'rejected'", (body, now, event_id))
        return cur.rowcount == 1

    def close(self) -> None:
        self._db.close()


_COLUMNS = "event_id, body, status, attempts, created_at, next_attempt_at, last_error, answer"


def _item(row: tuple[Any, ...]) -> Item:
    return Item(str(row[0]), bytes(row[1]), row[2], int(row[3]),
                dt.datetime.fromisoformat(str(row[4])), dt.datetime.fromisoformat(str(row[5])),
                row[6], row[7])
