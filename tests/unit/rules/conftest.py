"""Fixtures for the rules tests: the real rule book and an event factory with defaults."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from rules.engine import RuleBook, load_rulebook
from schemas.events import Event, parse_event_obj

NOW = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
NS = uuid.UUID("1f1e4b58-5a0e-4c1c-9d7a-0b6f3a2e9c41")

EventFactory = Callable[..., Event]


def make_event(kind: str, jurisdiction: str, person: dict[str, Any] | None = None, *,
               name: str = "", occurred_at: dt.datetime = NOW, **extra: Any) -> Event:
    """A valid event of `kind` with deterministic id; kind-specific required fields filled."""
    raw: dict[str, Any] = {
        "event_id": str(uuid.uuid5(NS, f"{name}|{kind}|{jurisdiction}|{person}|{extra}")),
        "kind": kind, "jurisdiction": jurisdiction,
        "occurred_at": occurred_at.isoformat(), "reported_at": max(occurred_at, NOW).isoformat(),
        "reporter": {"role": "public"},
    }
    if person is not None:
        raw["person"] = person
    if kind == "child_missing_reported":
        raw.setdefault("person", {})
        raw["last_seen_at"] = occurred_at.isoformat()
        raw["last_seen_location"] = {"place": "bus station"}
    if kind == "case_resolved":
        raw.update(case_id=str(uuid.uuid5(NS, "case")), outcome="found_alive",
                   reporter={"role": "public", "agency": "police"})
    if kind == "missing_child_info_release":
        raw.update(case_id=str(uuid.uuid5(NS, "case")), guardian_consent=True,
                   public_contact="110")
    raw.update(extra)
    return parse_event_obj(raw)


@pytest.fixture(scope="session")
def book() -> RuleBook:
    return load_rulebook()


@pytest.fixture
def event() -> EventFactory:
    return make_event
