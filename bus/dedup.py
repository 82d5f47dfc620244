"""Receivers drop copies by id.

Delivery is at-least-once end to end (the local broker cannot run Kafka transactions for
aiokafka), so a referral or alert may appear twice on a topic after a crash. Every
agency-facing path checks its ids here first; the store is SQLite so it survives a restart of
the receiver too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_store(path: Path | None) -> sqlite3.Connection:
    """A small local SQLite store (None: in memory), durable per statement, safe to reopen."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class SeenIds:
    """A durable set of ids already delivered by one consumer."""

    def __init__(self, path: Path | None) -> None:
        self._db = open_store(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)")

    def first_time(self, item_id: str) -> bool:
        """True the first time an id is offered, False for every copy after it."""
        cur = self._db.execute("INSERT OR IGNORE INTO seen (id) VALUES (?)", (item_id,))
        return cur.rowcount == 1

    def __contains__(self, item_id: object) -> bool:
        return self._db.execute("SELECT 1 FROM seen WHERE id = ?", (str(item_id),)).fetchone() is not None

    def close(self) -> None:
        self._db.close()
