"""What the intake remembers across restarts: accepted events (the idempotency record) and receipts.

SQLite in WAL mode under the state directory. One row per accepted `event_id`: a second request
with the same id gets the original answer and nothing is published again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from schemas.receipts import Receipt


@dataclass(frozen=True)
class Accepted:
    """The original result of an accepted event."""

    event_id: str
    agency: str
    body_sha256: str
    accepted_at: dt.datetime
    partition: int
    offset: int


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class IntakeStore:
    """Accepted events and the receipts read back from the receipts topic."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: FastAPI may run sync work in a thread pool; every statement is
        # a single autocommit call, and SQLite serialises them.
        self._db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged 202 must survive a power cut of the intake host.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS accepted (
                event_id TEXT PRIMARY KEY, agency TEXT NOT NULL, body_sha256 TEXT NOT NULL,
                accepted_at TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS receipts (event_id TEXT PRIMARY KEY, json TEXT NOT NULL);
            """
        )

    def accepted(self, event_id: str) -> Accepted | None:
        row = self._db.execute(
            'SELECT event_id, agency, body_sha256, accepted_at, partition, "offset" FROM accepted '
            "WHERE event_id = ?", (event_id,)).fetchone()
        if row is None:
            return None
        return Accepted(row[0], row[1], row[2], dt.datetime.fromisoformat(row[3]), row[4], row[5])

    def record(self, accepted: Accepted) -> Accepted:
        """Store an acceptance; if one raced in first, that one is the original and is returned."""
        self._db.execute(
            'INSERT OR IGNORE INTO accepted (event_id, agency, body_sha256, accepted_at, partition, "offset") '
            "VALUES (?, ?, ?, ?, ?, ?)",
            (accepted.event_id, accepted.agency, accepted.body_sha256, accepted.accepted_at.isoformat(),
             accepted.partition, accepted.offset))
        original = self.accepted(accepted.event_id)
        assert original is not None
        return original

    def put_receipt(self, receipt: Receipt) -> None:
        """Keep the latest receipt of an event (a replayed, fixed event replaces its refusal)."""
        self._db.execute("INSERT OR REPLACE INTO receipts (event_id, json) VALUES (?, ?)",
                         (receipt.event_id, receipt.model_dump_json()))

    def receipt(self, event_id: str) -> Receipt | None:
        row = self._db.execute("SELECT json FROM receipts WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else Receipt.model_validate_json(row[0])

    def close(self) -> None:
        self._db.close()
