"""Need-to-know projection: which event fields an agency's referral carries (Referral.subject).

The table is data (`rules/catalog/projections.yaml`), validated at load against the agency
catalog and the event models; `project()` builds the subject from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from rules.catalog import CATALOG_DIR, catalog
from rules.errors import ProjectionError
from rules.fields import is_known_path
from schemas.events import Event

DEFAULT_PATH = CATALOG_DIR / "projections.yaml"
_OBJECTS = frozenset({"person", "location", "reporter"})


def valid_path(path: str) -> bool:
    """A projection path: a whole object, one of its fields, or a top-level field."""
    return path in _OBJECTS or path == "details" or is_known_path(path)


class Projections(BaseModel):
    """The projection table: a default, and per-agency field lists."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: tuple[str, ...]
    agencies: dict[str, tuple[str, ...]]

    @model_validator(mode="after")
    def _check(self) -> Projections:
        known = catalog().agencies
        for code, paths in (("default", self.default), *self.agencies.items()):
            if code != "default" and code not in known:
                raise ValueError(f"projections: unknown agency {code!r}")
            for p in paths:
                if not valid_path(p):
                    raise ValueError(f"projections: {code}: unknown event field {p!r}")
        return self

    def fields_for(self, agency: str) -> tuple[str, ...]:
        """The agency's own list, else the nearest parent agency's, else the default."""
        code: str | None = agency
        agencies = catalog().agencies
        while code is not None:
            if code in self.agencies:
                return self.agencies[code]
            a = agencies.get(code)
            code = a.parent if a is not None else None
        return self.default


@cache
def load_projections(path: Path = DEFAULT_PATH) -> Projections:
    """Read and validate the projection table (cached per path)."""
    try:
        return Projections.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ProjectionError(f"{path}: {exc}") from exc


def _value(event: Event, path: str) -> Any:
    parts = path.split(".")
    obj: Any = event
    for part in parts:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if isinstance(obj, BaseModel):
        dumped = obj.model_dump(mode="json", exclude_none=True)
        return {k: v for k, v in dumped.items() if v not in ("", [], {})} or None
    if isinstance(obj, Mapping):
        return dict(obj) or None
    if obj == "":
        return None
    if isinstance(obj, tuple):
        return list(obj) if obj else None
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return obj


def paths_for(agency: str, add: Iterable[str] = (), drop: Iterable[str] = (),
              table: Projections | None = None) -> tuple[str, ...]:
    """The agency's paths after a rule's `fields` change (drop wins over add)."""
    if table is None:
        return _default_paths_for(agency, tuple(add), tuple(drop))
    return _paths_for(table, agency, add, drop)


def _paths_for(table: Projections, agency: str, add: Iterable[str], drop: Iterable[str]) -> tuple[str, ...]:
    base = table.fields_for(agency)
    dropped = set(drop)
    out = [p for p in (*base, *add) if p not in dropped]
    return tuple(dict.fromkeys(out))


@cache
def _default_paths_for(agency: str, add: tuple[str, ...], drop: tuple[str, ...]) -> tuple[str, ...]:
    # Resolved once per (agency, rule change): the router projects every referral.
    return _paths_for(load_projections(), agency, add, drop)


def event_values(event: Event) -> dict[str, Any]:
    """The event as JSON-ready values, computed once per event and shared by its projections."""
    return event.model_dump(mode="json", exclude_none=True)


def _picked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v not in ("", [], {})} or None
    if value in ("", [], {}):
        return None
    return value


def project(event: Event, agency: str, *, add: Iterable[str] = (), drop: Iterable[str] = (),
            table: Projections | None = None, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The subject of `agency`'s referral: the declared fields of the event, nested as in the
    event (`{"person": {"age": 7}}`), unknown values left out. Pass `values` (from
    `event_values`) when projecting one event for several agencies."""
    data = values if values is not None else event_values(event)
    subject: dict[str, Any] = {}
    for path in paths_for(agency, add, drop, table):
        head, _, tail = path.partition(".")
        value = data.get(head)
        if tail:
            value = value.get(tail) if isinstance(value, dict) else None
            if value is None and head in data:
                value = _value(event, path)  # a derived property such as person.is_child
        value = _picked(value)
        if value is None:
            continue
        if tail:
            subject.setdefault(head, {})[tail] = value
        else:
            subject[head] = value
    return subject



def narrow(subject: Mapping[str, Any], agency: str) -> dict[str, Any]:
    """A subject projected for one agency, narrowed to what `agency` may know (its own paths): for
    showing one agency's alert to another, e.g. an escalation's receiver."""
    allowed = set(paths_for(agency))
    out: dict[str, Any] = {}
    for head, value in subject.items():
        if head in allowed:
            out[head] = value
        elif isinstance(value, Mapping):
            inner = {tail: v for tail, v in value.items() if f"{head}.{tail}" in allowed}
            if inner:
                out[head] = inner
    return out
