"""What one desk remembers across restarts, in SQLite under `REFERRAL_BUS_STATE_DIR/dedup/`: the
notices it has shown (`bus.dedup.SeenIds`), the cases it knows closed or has paged about, and how
far it has read each partition of the decision topics (it reads them without a consumer group).

Each desk of an agency has its own files, claimed with a lock for as long as its pager runs: the
first pager of an agency is desk 1 and keeps the files pagers have always used, a second one
running beside it is desk 2, and so on. Two desks never share a memory, so neither hides a page
from the other; a restarted pager takes the lowest free desk back, and with it what that desk knew.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from bus.dedup import SeenIds, open_store
from bus.desk import CaseMemory


class DeskTaken(Exception):
    """The named desk is open in another pager."""


@dataclass
class DeskFiles:
    """One desk's files, locked by this process until `release`."""

    name: str
    seen: Path
    cases: Path
    lock_fd: int

    def release(self) -> None:
        os.close(self.lock_fd)  # closing the descriptor drops the lock


def claim_desk(state_dir: Path, agency: str, name: str | None = None) -> DeskFiles:
    """The desk `name`, or else the lowest-numbered desk of `agency` no running pager holds."""
    folder = state_dir / "dedup"
    folder.mkdir(parents=True, exist_ok=True)
    for candidate in [name] if name else (str(n) for n in range(1, 1000)):
        base = f"pager.{agency}" if candidate == "1" else f"pager.{agency}.desk-{candidate}"
        fd = os.open(folder / f"{base}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if name:
                raise DeskTaken(f"desk {name} of {agency} is open in another pager") from None
            continue
        return DeskFiles(candidate, folder / f"{base}.sqlite", folder / f"{base}.cases.sqlite", fd)
    raise DeskTaken(f"every desk of {agency} is open")


class DeskMemory:
    """Cases and read positions of one desk (SQLite; None: in memory)."""

    def __init__(self, path: Path | None) -> None:
        self._db = open_store(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS cases (case_id TEXT PRIMARY KEY, "
                         "closed INTEGER NOT NULL DEFAULT 0, paged INTEGER NOT NULL DEFAULT 0)")
        # Added since: a store written before reads as no duty kept open after a resolution.
        have = {row[1] for row in self._db.execute("PRAGMA table_info(cases)")}
        if "live" not in have:
            self._db.execute("ALTER TABLE cases ADD COLUMN live TEXT NOT NULL DEFAULT '[]'")
        self._db.execute("CREATE TABLE IF NOT EXISTS positions (topic TEXT NOT NULL, partition INTEGER NOT NULL, "
                         "next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition))")

    def case(self, case_id: str) -> CaseMemory | None:
        row = self._db.execute("SELECT closed, paged, live FROM cases WHERE case_id = ?", (case_id,)).fetchone()
        return None if row is None else CaseMemory(bool(row[0]), bool(row[1]), frozenset(json.loads(row[2])))

    def put_case(self, case_id: str, memory: CaseMemory) -> None:
        # Named columns: a store written by an earlier pager keeps columns this one no longer uses.
        self._db.execute("INSERT OR REPLACE INTO cases (case_id, closed, paged, live) VALUES (?, ?, ?, ?)",
                         (case_id, int(memory.closed), int(memory.paged), json.dumps(sorted(memory.live))))

    def positions(self, topic: str) -> dict[int, int]:
        return dict(self._db.execute("SELECT partition, next_offset FROM positions WHERE topic = ?",
                                     (topic,)).fetchall())

    def advance(self, topic: str, partition: int, next_offset: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO positions (topic, partition, next_offset) VALUES (?, ?, ?)",
                         (topic, partition, next_offset))

    def close(self) -> None:
        self._db.close()


def open_memory(files: DeskFiles) -> tuple[SeenIds, DeskMemory]:
    return SeenIds(files.seen), DeskMemory(files.cases)
