"""Indexes the alerts service derives from its tracked states and cases, never stores apart.

Rebuilt from the restored tables after every recovery or rebalance, so they cannot disagree with
the tables when a worker dies between two writes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from schemas.alerts import CaseChange, TrackedState
from services.alerts import lifecycle


class Indexes:
    """Three views of the tracked states, kept up to date by `index` on every write:

    - `waiting`: the alerts waiting for an answer, with their next deadline (the timer's work);
    - `open_by_case`: per case id, the states a resolution may still change (closing a case
      without a scan of the table);
    - `open_by_event`: per event id, its open referrals (grouping a clue's referrals under the
      case the clue is linked to, with the ids the router gave them);

    and, from the cases, `clue_links`: clue event id -> (case id, match reason).
    """

    def __init__(self) -> None:
        self.waiting: dict[str, dt.datetime] = {}
        self.open_by_case: dict[str, set[str]] = {}
        self.open_by_event: dict[str, set[str]] = {}
        # The reverse of the two above: a state's case may change later (grouping, release).
        self._case_of: dict[str, str] = {}
        self._event_of: dict[str, str] = {}
        self.clue_links: dict[str, tuple[uuid.UUID, str]] | None = None

    def clear(self) -> None:
        for index in (self.waiting, self.open_by_case, self.open_by_event, self._case_of, self._event_of):
            index.clear()

    def rebuild(self, states: Iterable[TrackedState]) -> None:
        self.clear()
        for state in states:
            self.index(state)

    def index(self, state: TrackedState) -> None:
        """Put one state, new or changed, in every index it belongs to (and out of the others)."""
        key = str(state.id)
        if state.kind == "alert" and state.next_deadline is not None and state.status in lifecycle.WAITING:
            self.waiting[key] = state.next_deadline
        else:
            self.waiting.pop(key, None)
        case_id = lifecycle.case_of(state)
        _move(self.open_by_case, self._case_of, key,
              str(case_id) if case_id is not None and lifecycle.resolution_may_change(state) else None)
        _move(self.open_by_event, self._event_of, key,
              str(state.event_id) if state.kind == "referral" and state.status not in lifecycle.FINAL else None)

    def links(self, cases: Iterable[CaseChange]) -> dict[str, tuple[uuid.UUID, str]]:
        """Clue event id -> (case id, match reason) of every linked clue, built on first use."""
        if self.clue_links is None:
            self.clue_links = {str(clue.event_id): (case.case_id, clue.reason) for case in cases for clue in case.clues}
        return self.clue_links


def _move(index: dict[str, set[str]], reverse: dict[str, str], key: str, to: str | None) -> None:
    before = reverse.pop(key, None)
    if before is not None:
        keys = index.get(before, set())
        keys.discard(key)
        if not keys:
            index.pop(before, None)
    if to is not None:
        index.setdefault(to, set()).add(key)
        reverse[key] = to
