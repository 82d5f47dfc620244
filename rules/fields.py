"""Dotted event field paths (`person.age`, `reporter.role`, `details.x`) shared by rule
conditions and need-to-know projections: which paths exist, and a fast getter for each."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from pydantic import BaseModel

from schemas.events import (
    BroadcastRelease,
    CaseResolution,
    Event,
    Location,
    MissingChildReport,
    Person,
    Reporter,
)

Getter = Callable[[Event], Any]

_NESTED: dict[str, type[BaseModel]] = {"person": Person, "reporter": Reporter, "location": Location}
_EVENT_MODELS: tuple[type[Event], ...] = (Event, MissingChildReport, CaseResolution, BroadcastRelease)


def _model_names(model: type[BaseModel]) -> set[str]:
    """Fields, computed fields and public read-only properties (`Person.is_child`)."""
    props = {name for klass in model.__mro__ if issubclass(klass, BaseModel)
             for name, value in vars(klass).items()
             if isinstance(value, property) and not name.startswith("_")
             and not name.startswith("model_")}
    return set(model.model_fields) | set(model.model_computed_fields) | props


@cache
def known_paths() -> frozenset[str]:
    """Every addressable path except `details.<name>` (any name is allowed there)."""
    out: set[str] = set()
    for model in _EVENT_MODELS:
        for name in _model_names(model):
            out.add(name)
    for root, nested in _NESTED.items():
        for name in _model_names(nested):
            out.add(f"{root}.{name}")
    out.discard("details")
    return frozenset(out)


def is_known_path(path: str) -> bool:
    """True for a path that exists on some event model, or `details.<name>`."""
    if path.startswith("details."):
        return len(path) > len("details.") and "." not in path[len("details."):]
    return path in known_paths()


def getter(path: str) -> Getter:
    """A function reading `path` from an event; None where any step is missing."""
    parts = path.split(".")
    if parts[0] == "details":
        name = parts[1]
        return lambda e: e.details.get(name)
    if len(parts) == 1:
        attr = parts[0]
        return lambda e: getattr(e, attr, None)
    root, attr = parts[0], parts[1]

    def get(e: Event) -> Any:
        obj = getattr(e, root, None)
        return None if obj is None else getattr(obj, attr, None)

    return get
