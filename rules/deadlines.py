"""Acknowledgement and action deadlines per urgency level, read from
`rules/catalog/deadlines.yaml` and validated against the urgency vocabulary."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from rules.catalog import CATALOG_DIR, catalog
from rules.errors import DeadlinesError

DEFAULT_PATH = CATALOG_DIR / "deadlines.yaml"


class LevelDeadline(BaseModel):
    """How long an agency has to acknowledge, and to act (None: no such deadline)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ack_within: dt.timedelta | None
    due_within: dt.timedelta | None

    @model_validator(mode="after")
    def _positive_and_ordered(self) -> LevelDeadline:
        for name in ("ack_within", "due_within"):
            value = getattr(self, name)
            if value is not None and value <= dt.timedelta(0):
                raise ValueError(f"{name} must be positive")
        if (self.ack_within is not None and self.due_within is not None
                and self.due_within < self.ack_within):
            raise ValueError("due_within is shorter than ack_within")
        return self


class Deadlines(BaseModel):
    """Deadlines for every urgency level of the vocabulary, and no other level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deadlines: dict[str, LevelDeadline]

    @model_validator(mode="after")
    def _covers_vocabulary(self) -> Deadlines:
        levels = set(catalog().urgency_levels)
        missing = sorted(levels - set(self.deadlines))
        unknown = sorted(set(self.deadlines) - levels)
        if missing:
            raise ValueError(f"no deadline for urgency level(s): {', '.join(missing)}")
        if unknown:
            raise ValueError(f"unknown urgency level(s): {', '.join(unknown)}")
        return self

    def __hash__(self) -> int:  # frozen, but dict fields are not hashable by default
        return hash(tuple(sorted((k, v.ack_within, v.due_within) for k, v in self.deadlines.items())))

    def for_level(self, level: str) -> LevelDeadline:
        return self.deadlines[level]

    def ack_by(self, level: str, reported_at: dt.datetime) -> dt.datetime | None:
        return _after(reported_at, self.deadlines[level].ack_within)

    def due_by(self, level: str, reported_at: dt.datetime) -> dt.datetime | None:
        return _after(reported_at, self.deadlines[level].due_within)

    def deadlines_of(self, level: str, reported_at: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
        """(`ack_by`, `due_by`) at once: the router reads both for each urgency of each event."""
        level_deadline = self.deadlines[level]
        ack_within, due_within = level_deadline.ack_within, level_deadline.due_within
        try:
            # `_after` of each, without its two calls: the router reads both per urgency per event.
            return (None if ack_within is None else reported_at + ack_within,
                    None if due_within is None else reported_at + due_within)
        except OverflowError:
            return _after(reported_at, ack_within), _after(reported_at, due_within)

    @classmethod
    def load(cls, path: Path | None = None) -> Deadlines:
        """Read and validate the deadlines file (the catalog's by default); cached per path."""
        return _load(Path(path) if path is not None else DEFAULT_PATH)


@cache
def _load(path: Path) -> Deadlines:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Deadlines.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise DeadlinesError(f"{path}: {exc}") from exc


#: The last instant a timestamp can hold.
END_OF_TIME = dt.datetime.max.replace(tzinfo=dt.UTC)


def _after(reported_at: dt.datetime, within: dt.timedelta | None) -> dt.datetime | None:
    if within is None:
        return None
    try:
        return reported_at + within
    except OverflowError:
        # A report dated at the end of year 9999 (valid on the wire): its deadline is the last
        # instant a timestamp can hold, rather than a routing step that fails.
        return END_OF_TIME
