"""What an intake replica remembers across restarts: who owns each event id, what was accepted,
the receipts, each receipt under the agency it was issued to, the alerts and referrals agencies
may answer (who each was addressed or escalated to, from `alerts.states`) and the answers it took.

SQLite in WAL mode under the state directory. Ownership and acceptances are applied from the
claims topic (`services/intake/claims.py`) in log order, so every replica holds the same answer:
the first claim of an event id owns it, and an event id is accepted once (the first acceptance
is the original answer to a repeated request).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from schemas.receipts import EventClaim, Receipt


@dataclass(frozen=True)
class Duty:
    """An alert or referral as the alerts service last published it: who may answer it, and
    whether an answer can still change it. Ids and codes only (no subject, no history)."""

    id: str
    event_id: str
    kind: str
    status: str
    agencies: frozenset[str]
    twin_id: str | None


@dataclass(frozen=True)
class TakenAnswer:
    """An answer the broker acknowledged: what a repeat of its `response_id` is answered with."""

    response_id: str
    referral_id: str
    agency: str
    answer: str
    body_sha256: str
    accepted_at: dt.datetime


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
    """Event-id owners, accepted events and the receipts read back from the receipts topic."""

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
            CREATE TABLE IF NOT EXISTS owners (event_id TEXT PRIMARY KEY, agency TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS agency_receipts (
                event_id TEXT NOT NULL, agency TEXT NOT NULL, json TEXT NOT NULL,
                PRIMARY KEY (event_id, agency));
            CREATE TABLE IF NOT EXISTS claim_positions (partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS duties (
                id TEXT PRIMARY KEY, event_id TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
                agencies TEXT NOT NULL, twin_id TEXT);
            CREATE TABLE IF NOT EXISTS duty_positions (partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS answer_attempts (
                response_id TEXT PRIMARY KEY, referral_id TEXT NOT NULL, agency TEXT NOT NULL,
                body_sha256 TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS answers (
                response_id TEXT PRIMARY KEY, referral_id TEXT NOT NULL, agency TEXT NOT NULL, answer TEXT NOT NULL,
                body_sha256 TEXT NOT NULL, accepted_at TEXT NOT NULL);
            """
        )

    # -- ownership and acceptance ---------------------------------------------------------------

    def owner(self, event_id: str) -> str | None:
        """The agency that owns an event id: its first claim (or, for events accepted before
        claims existed, its acceptance)."""
        row = self._db.execute("SELECT agency FROM owners WHERE event_id = ?", (event_id,)).fetchone()
        if row is not None:
            return str(row[0])
        accepted = self.accepted(event_id)
        return accepted.agency if accepted is not None else None

    def claim(self, event_id: str, agency: str) -> str:
        """Record a claim unless the id is owned already; returns the owner."""
        self._db.execute("INSERT OR IGNORE INTO owners (event_id, agency) VALUES (?, ?)", (event_id, agency))
        owner = self.owner(event_id)
        assert owner is not None
        return owner

    def accepted(self, event_id: str) -> Accepted | None:
        row = self._db.execute(
            'SELECT event_id, agency, body_sha256, accepted_at, partition, "offset" FROM accepted '
            "WHERE event_id = ?", (event_id,)).fetchone()
        if row is None:
            return None
        return Accepted(row[0], row[1], row[2], dt.datetime.fromisoformat(row[3]), row[4], row[5])

    def record(self, accepted: Accepted) -> Accepted:
        """Store an acceptance; if one came first, that one is the original and is returned."""
        self._db.execute(
            'INSERT OR IGNORE INTO accepted (event_id, agency, body_sha256, accepted_at, partition, "offset") '
            "VALUES (?, ?, ?, ?, ?, ?)",
            (accepted.event_id, accepted.agency, accepted.body_sha256, accepted.accepted_at.isoformat(),
             accepted.partition, accepted.offset))
        original = self.accepted(accepted.event_id)
        assert original is not None
        return original

    def apply_claims(self, partition: int, records: list[tuple[int, EventClaim | None]]) -> None:
        """Records of one claims partition, in log order, and the position after them (one
        transaction: a restarted replica resumes exactly where it stopped). None: not a claim."""
        if not records:
            return
        with self._db:
            self._db.execute("BEGIN")
            for _, claim in records:
                if claim is None:
                    continue
                event_id = str(claim.event_id)
                self._db.execute("INSERT OR IGNORE INTO owners (event_id, agency) VALUES (?, ?)",
                                 (event_id, claim.agency))
                if claim.status == "accepted" and claim.body_sha256 is not None:
                    self.record(Accepted(event_id, claim.agency, claim.body_sha256, claim.at,
                                         claim.partition or 0, claim.offset or 0))
            self._db.execute("INSERT OR REPLACE INTO claim_positions (partition, next_offset) VALUES (?, ?)",
                             (partition, records[-1][0] + 1))

    def claim_positions(self) -> dict[int, int]:
        return {int(p): int(o) for p, o in self._db.execute("SELECT partition, next_offset FROM claim_positions")}

    def forget_claim_positions(self) -> None:
        """The claims topic is shorter than what was read (a broker that lost its data): read it again."""
        self._db.execute("DELETE FROM claim_positions")

    # -- what agencies may answer, and the answers taken ----------------------------------------

    def apply_duties(self, partition: int, records: list[tuple[int, Duty | str | None]]) -> None:
        """Records of one `alerts.states` partition in log order, and the position after them, in
        one transaction. A `Duty` is the latest of its id; a str is a tombstone's key (the id is
        gone); None is a record that is not a state (skipped)."""
        if not records:
            return
        with self._db:
            self._db.execute("BEGIN")
            for _, duty in records:
                if isinstance(duty, str):
                    self._db.execute("DELETE FROM duties WHERE id = ?", (duty,))
                elif duty is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO duties (id, event_id, kind, status, agencies, twin_id) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (duty.id, duty.event_id, duty.kind, duty.status, " ".join(sorted(duty.agencies)),
                         duty.twin_id))
            self._db.execute("INSERT OR REPLACE INTO duty_positions (partition, next_offset) VALUES (?, ?)",
                             (partition, records[-1][0] + 1))

    def duty(self, duty_id: str) -> Duty | None:
        row = self._db.execute("SELECT id, event_id, kind, status, agencies, twin_id FROM duties WHERE id = ?",
                               (duty_id,)).fetchone()
        if row is None:
            return None
        return Duty(row[0], row[1], row[2], row[3], frozenset(row[4].split()), row[5])

    def duty_positions(self) -> dict[int, int]:
        return {int(p): int(o) for p, o in self._db.execute("SELECT partition, next_offset FROM duty_positions")}

    def forget_duty_positions(self) -> None:
        """`alerts.states` is shorter than what was read (a broker that lost its data): read it again."""
        self._db.execute("DELETE FROM duty_positions")

    def taken_answer(self, response_id: str) -> TakenAnswer | None:
        row = self._db.execute("SELECT response_id, referral_id, agency, answer, body_sha256, accepted_at "
                               "FROM answers WHERE response_id = ?", (response_id,)).fetchone()
        if row is None:
            return None
        return TakenAnswer(row[0], row[1], row[2], row[3], row[4], dt.datetime.fromisoformat(row[5]))

    def attempted_answer(self, response_id: str, referral_id: str, agency: str, body_sha256: str) -> bool:
        """Whether this very answer was published before without an acknowledgement (a publish that
        timed out may still have reached the broker, and been applied)."""
        row = self._db.execute("SELECT referral_id, agency, body_sha256 FROM answer_attempts WHERE response_id = ?",
                               (response_id,)).fetchone()
        return row is not None and tuple(row) == (referral_id, agency, body_sha256)

    def attempt_answer(self, response_id: str, referral_id: str, agency: str, body_sha256: str) -> None:
        """Note an authorised answer about to be published."""
        self._db.execute("INSERT OR IGNORE INTO answer_attempts (response_id, referral_id, agency, body_sha256) "
                         "VALUES (?, ?, ?, ?)", (response_id, referral_id, agency, body_sha256))

    def take_answer(self, taken: TakenAnswer) -> TakenAnswer:
        """Record an answer the broker has; if one with its `response_id` came first, that one."""
        self._db.execute("INSERT OR IGNORE INTO answers (response_id, referral_id, agency, answer, body_sha256, "
                         "accepted_at) VALUES (?, ?, ?, ?, ?, ?)",
                         (taken.response_id, taken.referral_id, taken.agency, taken.answer, taken.body_sha256,
                          taken.accepted_at.isoformat()))
        original = self.taken_answer(taken.response_id)
        assert original is not None
        return original

    # -- receipts ---------------------------------------------------------------------------------

    def put_receipt(self, receipt: Receipt) -> None:
        """Keep the latest receipt of an event for the agency it names as reporter (a replayed,
        fixed event replaces its refusal); another agency's receipt of the same id is another row."""
        self._db.execute("INSERT OR REPLACE INTO agency_receipts (event_id, agency, json) VALUES (?, ?, ?)",
                         (receipt.event_id, receipt.reporter_agency or "", receipt.model_dump_json()))

    def receipt(self, event_id: str, agency: str) -> Receipt | None:
        """The receipt of `event_id` issued to `agency`, if any."""
        row = self._db.execute("SELECT json FROM agency_receipts WHERE event_id = ? AND agency = ?",
                               (event_id, agency)).fetchone()
        return None if row is None else Receipt.model_validate_json(row[0])

    def close(self) -> None:
        self._db.close()
