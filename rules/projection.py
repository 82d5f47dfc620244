"""Need-to-know projection: which event fields an agency's referral carries (Referral.subject).

The table is data (`rules/catalog/projections.yaml`), validated at load against the agency
catalog and the event models; `project()` builds the subject from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import to_jsonable_python

from rules.catalog import CATALOG_DIR, catalog
from rules.errors import ProjectionError
from rules.fields import is_known_path
from schemas.events import Event, Location, Person, Reporter

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


#: The JSON-ready types whose empty value ("", [], {}) means unknown.
_EMPTY_MEANS_UNKNOWN = (str, list, dict)


def _picked(value: Any) -> Any:
    """`value` (JSON-ready) with unknown parts left out, one level down; None if it is unknown.
    (A test of the type, not `v not in ("", [], {})`: comparing a value with each of those, of
    other types, cost more than the rest of projecting an event.)"""
    if value.__class__ is dict:
        return {k: v for k, v in value.items() if v or v.__class__ not in _EMPTY_MEANS_UNKNOWN} or None
    if not value and value.__class__ in _EMPTY_MEANS_UNKNOWN:
        return None
    return value


_UNSET: Any = object()


#: Up to this many fields, an event's projections read each field alone; beyond, the whole
#: event in one call of pydantic's serializer costs less (and `include` costs more than it saves).
_FEW_FIELDS = 4


class EventValues:
    """An event's values for its projections, each top-level field read once per event and
    shared by them: as JSON-ready values (`model_dump(mode="json", exclude_none=True)` of that
    field) with unknown parts left out (empty strings, lists and objects, one level down too).
    For projections that read more than a few fields (`heads`, None: any), the fields they read
    are dumped at once: then a field outside `heads` is unknown."""

    __slots__ = ("_dumped", "_fields", "_heads", "_picked", "_whole", "event")

    def __init__(self, event: Event, heads: frozenset[str] | None = None) -> None:
        self.event = event
        self._fields = _fields_of(event.__class__)
        self._heads = heads
        self._whole = heads is None or len(heads) > _FEW_FIELDS
        self._dumped: dict[str, Any] | None = None
        self._picked: dict[str, Any] = {}

    def picked(self, head: str) -> Any:
        """The value of top-level field `head`, unknown parts left out; None if unknown (also
        for a field of another kind's model, `last_seen_at` on a clue)."""
        value = self._picked.get(head, _UNSET)
        if value is _UNSET:
            if self._whole:
                if self._dumped is None:
                    self._dumped = self._pick_all()
                    return self._picked.get(head)
                return None
            # Only the event's own fields: a field of another kind's model is unknown here,
            # without pydantic's slow path for a missing attribute.
            value = getattr(self.event, head) if head in self._fields else None
            if value is not None and value.__class__ is not str:
                value = to_jsonable_python(value, exclude_none=True)
            value = self._picked[head] = _picked(value)
        return value

    def known(self) -> dict[str, Any] | None:
        """Every top-level field's value that is known (as `picked` gives it), of the fields
        read at once (`heads`); None when they are read one by one."""
        if not self._whole:
            return None
        if self._dumped is None:
            self._dumped = self._pick_all()
        return self._picked

    def _pick_all(self) -> dict[str, Any]:
        # The fields read, in one dump of the event by its model's serializer (a call per field
        # cost as much as the dump), every field picked in one pass.
        event = self.event
        heads = self._heads
        dumped: dict[str, Any] = event.__pydantic_serializer__.to_python(
            event, mode="json", exclude_none=True,
            exclude=None if heads is None else _left_out(event.__class__, heads))
        # Picked in place (the dump is ours): objects without their unknown parts, unknown
        # values left out.
        # An object's unknown parts are taken out of it in place (most persons have some: an
        # empty list of wishes); loops rather than comprehensions, which cost a call each here.
        unknown = []
        for head, value in dumped.items():
            if value.__class__ is dict:
                parts_unknown = None
                for name, v in value.items():
                    if not v and v.__class__ in _EMPTY_MEANS_UNKNOWN:
                        if parts_unknown is None:
                            parts_unknown = [name]
                        else:
                            parts_unknown.append(name)
                if parts_unknown is not None:
                    for name in parts_unknown:
                        del value[name]
                if not value:
                    unknown.append(head)
            elif not value and value.__class__ in _EMPTY_MEANS_UNKNOWN:
                unknown.append(head)
        for head in unknown:
            del dumped[head]
        self._picked = dumped
        return dumped

    @property
    def heads(self) -> frozenset[str] | None:
        """The top-level fields read at once (None: any)."""
        return self._heads

    def has(self, head: str) -> bool:
        """Whether the event has a value for `head` (even one whose parts are all unknown)."""
        return head in self._fields and getattr(self.event, head) is not None


@cache
def _fields_of(model: type[Event]) -> frozenset[str]:
    return frozenset(model.model_fields)


@lru_cache(maxsize=4096)  # bounded: one per event model and set of fields projected together
def _left_out(model: type[Event], heads: frozenset[str]) -> set[str]:
    """The fields of `model` outside `heads`, as the set its serializer leaves out. (An `exclude`
    costs pydantic-core less than the `include` of the same fields, and a `set` much less than a
    frozenset, which it reads as any iterable: ~1.5 µs an event.) Never changed: shared."""
    return set(_fields_of(model) - heads)


def event_values(event: Event, projectors: Iterable[Projector] | None = None) -> EventValues:
    """The values the projections of `event` read (`EventValues`): those of `projectors`, or
    of any projection."""
    if projectors is None:
        return EventValues(event)
    return EventValues(event, frozenset().union(*(p.heads for p in projectors)))


_FIELDS_OF: dict[str, frozenset[str]] = {
    "person": frozenset(Person.model_fields), "location": frozenset(Location.model_fields),
    "reporter": frozenset(Reporter.model_fields)}


@dataclass(frozen=True, slots=True, eq=False)
class Projector:
    """One agency's projection (after a rule's `fields` change), compiled into steps, one per
    run of paths with the same head: a whole value (`person`, `description`: no fields), or
    fields of it (`person.age`, `person.sex`), each with its full path when it is a derived
    property (`person.is_child`) that the JSON values do not hold. Compared by identity: one
    per list of paths, from `projector()`, so that agencies that need to know the same fields
    share one (and `route` projects an event once for all of them)."""

    paths: tuple[str, ...]
    steps: tuple[tuple[str, tuple[tuple[str, str | None], ...]], ...]
    #: The top-level fields it reads.
    heads: frozenset[str]
    #: The steps as (head, None) for a whole value and (head, names) for fields that the picked
    #: values hold as they are (no derived property, no `details` key, which may be an object
    #: to pick again); None when a step needs more (`subject_step_by_step`).
    plain: tuple[tuple[str, tuple[str, ...] | None], ...] | None
    #: The heads, when every step takes a whole value (police: all of the event but its ids
    #: and clocks): the subject is the event's known values of them.
    wholes: tuple[str, ...] | None

    def subject(self, values: EventValues) -> dict[str, Any]:
        """The subject for the event whose values (`event_values`) are `values`. Parts of it
        (a whole `person`, a list) may be shared with the event's other subjects."""
        if self.plain is None:
            return self.subject_step_by_step(values)
        known = values.known()
        if self.wholes is not None and known is not None:
            if _reads_as_is(self, values.event.__class__, values.heads):
                return known  # the same fields in the same order: shared, as parts of it are
            return {head: known[head] for head in self.wholes if head in known}
        picked = known.get if known is not None else values.picked
        subject: dict[str, Any] = {}
        for head, names in self.plain:
            value = picked(head)
            if value is None:
                continue
            if names is None:
                subject[head] = value
            elif value.__class__ is dict:
                # Picked values hold no unknown parts: a field is there or unknown.
                part = {}
                for name in names:
                    if name in value:
                        part[name] = value[name]
                if part:
                    known = subject.get(head)  # never write into the shared values
                    subject[head] = part if known is None else {**known, **part}
        return subject

    def subject_step_by_step(self, values: EventValues) -> dict[str, Any]:
        """`subject`, each field of each step looked at on its own: for any projection."""
        subject: dict[str, Any] = {}
        for head, fields in self.steps:
            value = values.picked(head)
            if not fields:
                if value is not None:
                    subject[head] = value
                continue
            source = value if isinstance(value, dict) else {}
            into = None
            for name, derived in fields:
                field_value = source.get(name)
                if field_value is None:
                    # Picked values lack unknown parts; a derived property is not among them.
                    if derived is None or not values.has(head):
                        continue
                    field_value = _picked(_value(values.event, derived))
                    if field_value is None:
                        continue
                elif isinstance(field_value, dict):
                    field_value = _picked(field_value)
                    if field_value is None:
                        continue
                if into is None:
                    into = subject.get(head)
                    if into is None or into is value:  # never write into the shared values
                        into = subject[head] = dict(into or {})
                into[name] = field_value
        return subject


@lru_cache(maxsize=4096)  # bounded: one per projection, event model and set of fields read together
def _reads_as_is(projector: Projector, model: type[Event], heads: frozenset[str] | None) -> bool:
    """Whether the known values of an event of `model`, its fields `heads` read at once, are the
    subject of `projector` (`wholes`) as they are: it takes every one of them whole, in the
    model's order (the police's projection, alone or with narrower ones). A field read for
    another projection, not this one's, makes the lists differ."""
    if heads is None or projector.wholes is None:
        return False
    fields = model.model_fields  # (the heads of other kinds' models are never known here)
    return [h for h in fields if h in heads] == [h for h in projector.wholes if h in heads and h in fields]


@cache
def _compiled(paths: tuple[str, ...]) -> Projector:
    steps: list[tuple[str, list[tuple[str, str | None]]]] = []
    for path in paths:
        head, _, name = path.partition(".")
        if not name:
            steps.append((head, []))
            continue
        # A field of a nested model, or a key of `details`, that the JSON values lack is None;
        # anything else (a property such as person.is_child) is read from the event itself.
        derived = None if head == "details" or name in _FIELDS_OF.get(head, frozenset()) else path
        if steps and steps[-1][0] == head and steps[-1][1]:
            steps[-1][1].append((name, derived))
        else:
            steps.append((head, [(name, derived)]))
    plain = tuple((head, tuple(name for name, _ in fields) if fields else None) for head, fields in steps)
    is_plain = all(not fields or (head != "details" and all(derived is None for _, derived in fields))
                   for head, fields in steps)
    wholes = tuple(head for head, fields in steps if not fields)
    return Projector(paths, tuple((head, tuple(fields)) for head, fields in steps),
                     frozenset(head for head, _ in steps), plain if is_plain else None,
                     wholes if len(wholes) == len(steps) else None)


@cache
def _default_projector(agency: str, add: tuple[str, ...], drop: tuple[str, ...]) -> Projector:
    return _compiled(_default_paths_for(agency, add, drop))


def projector(agency: str, add: Iterable[str] = (), drop: Iterable[str] = (),
              table: Projections | None = None) -> Projector:
    """The compiled projection of `agency` after a rule's `fields` change; one object per list
    of paths, whichever the agency and table, so that it can key a per-event cache."""
    if table is None:
        return _default_projector(agency, tuple(add), tuple(drop))
    return _compiled(_paths_for(table, agency, add, drop))


def project(event: Event, agency: str, *, add: Iterable[str] = (), drop: Iterable[str] = (),
            table: Projections | None = None, values: EventValues | None = None) -> dict[str, Any]:
    """The subject of `agency`'s referral: the declared fields of the event, nested as in the
    event (`{"person": {"age": 7}}`), unknown values left out. Pass `values` (from
    `event_values`) when projecting one event for several agencies."""
    return projector(agency, add, drop, table).subject(values if values is not None else event_values(event))


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
