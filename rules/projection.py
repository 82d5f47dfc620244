"""Need-to-know projection: which event fields an agency's referral carries (Referral.subject).

The table is data (`rules/catalog/projections.yaml`), validated at load against the agency
catalog and the event models; `project()` builds the subject from it.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticUndefined, to_json, to_jsonable_python

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
            if self._whole and (self._dumped is not None or (self._heads is not None and head not in self._heads)):
                return None
            # Read alone until a projection wants every field at once (`known`): the agencies
            # that may know a few fields (`kind`, `person.age`, ...) do not pay for a dump.
            # Only the event's own fields: a field of another kind's model is unknown here,
            # without pydantic's slow path for a missing attribute.
            value = getattr(self.event, head) if head in self._fields else None
            if value is not None and value.__class__ is not str:
                value = to_jsonable_python(value, exclude_none=True)
            value = self._picked[head] = _picked(value)
        return value

    def fields(self, head: str, names: tuple[str, ...]) -> dict[str, Any] | None:
        """The known values of fields `names` of the object `head` (`person`, `location`,
        `reporter`), in that order, as `picked(head)` holds them; None if none is known. Read from
        the object's attributes unless the event was dumped already: an agency that may know four
        fields of a person costs four reads, not a dump of the whole person (the router projects
        most events for such agencies alone)."""
        if self._dumped is not None:
            value = self._picked.get(head)
            if value is None:
                return None
            part = {}
            for name in names:
                if name in value:
                    part[name] = value[name]
            return part or None
        # A model's fields are in its `__dict__` (pydantic keeps them there): a missing one, of
        # another kind's model, is unknown, without pydantic's slow path for a missing attribute.
        obj = self.event.__dict__.get(head)
        if obj is None or (self._whole and self._heads is not None and head not in self._heads):
            return None
        fields = obj.__dict__
        found = {}
        for name in names:
            field_value = fields.get(name)
            if field_value is None:
                continue
            cls = field_value.__class__
            if cls is str:  # as the dump writes it; an empty string is unknown
                if field_value:
                    found[name] = field_value
            elif cls is int or cls is bool or cls is float:
                found[name] = field_value
            else:
                field_value = to_jsonable_python(field_value, exclude_none=True)
                if field_value or field_value.__class__ not in _EMPTY_MEANS_UNKNOWN:
                    found[name] = field_value
        return found or None

    def known(self) -> dict[str, Any] | None:
        """Every top-level field's value that is known (as `picked` gives it), of the fields
        read at once (`heads`); None when they are read one by one."""
        if not self._whole:
            return None
        if self._dumped is None:
            self._dumped = self._pick_all()
        return self._picked

    def known_json(self) -> bytes:
        """`to_json(self.known())`, the JSON of the known values of the fields read at once: for a
        subject that is those values as they are (the police's), written by the event's own
        serializer in one call when nothing in it needs picking (`_written_known`), rather than
        dumped, picked and written again (the router writes the police's subject per event)."""
        if self._dumped is None and self._whole and self._heads is not None:
            written = _written_known(self.event, self._heads)
            if written is not None:
                return written
        return to_json(self.known())

    @property
    def whole(self) -> bool:
        """Whether the fields read are dumped at once (`known`), rather than one by one."""
        return self._whole

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


#: The Python classes whose empty value is written as one of `_UNKNOWN_JSON`.
_EMPTY_WHEN_UNKNOWN = (str, tuple, list, dict, set, frozenset)
#: An unknown (empty) string, list or object as the value of a field: a message without one has
#: nothing for `EventValues._pick_all` to take out (it looks two levels down, at fields only).
#: Inside a string a quote is escaped, so a match there is only a false alarm, never a miss: the
#: values are then picked as usual. (One search: each `in` of bytes costs as much.)
_UNKNOWN_VALUE = re.compile(rb':(?:""|\[\]|\{\})').search


def _written_known(event: Event, heads: frozenset[str]) -> bytes | None:
    """The JSON of the event's known values of `heads` (`EventValues.known`), written by its
    serializer: None when the message holds an empty value the picking would take out or a part
    it would leave empty. The fields whose default is empty (`description`, `details`,
    `person.wishes`: most events leave them so) are left out beforehand when they are empty."""
    model = event.__class__
    values = event.__dict__
    empties: tuple[tuple[str, str | None], ...] = ()
    for head, name in _defaults_empty(model, heads):
        value = values[head]
        if name is not None and value is not None:
            value = getattr(value, name, None)
        if not value and value is not None and value.__class__ in _EMPTY_WHEN_UNKNOWN:
            empties += ((head, name),)
    written: bytes = event.__pydantic_serializer__.to_json(
        event, exclude_none=True, exclude=_left_out_with(model, heads, empties))
    return None if _UNKNOWN_VALUE(written) else written


@lru_cache(maxsize=4096)  # bounded: one per event model and set of fields read together
def _defaults_empty(model: type[Event], heads: frozenset[str]) -> tuple[tuple[str, str | None], ...]:
    """The fields among `heads` (name, None), and the fields of the models they hold (head, name),
    whose default is an empty value (an unknown one): those `_written_known` looks at."""
    out: list[tuple[str, str | None]] = []
    for head, info in model.model_fields.items():
        if head not in heads:
            continue
        if _empty_default(info):
            out.append((head, None))
        for nested in _models_in(info.annotation):
            for name, nested_info in nested.model_fields.items():
                if _empty_default(nested_info) and (head, name) not in out:
                    out.append((head, name))
    return tuple(out)


def _empty_default(info: Any) -> bool:
    default = info.default_factory() if info.default_factory is not None else info.default
    return default is not PydanticUndefined and default is not None and not default \
        and default.__class__ in _EMPTY_WHEN_UNKNOWN


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation names (`Person | None`: Person)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


@lru_cache(maxsize=4096)  # bounded: one per event model, set of fields and set of empty ones
def _left_out_with(model: type[Event], heads: frozenset[str],
                   empties: tuple[tuple[str, str | None], ...]) -> set[str] | dict[str, Any]:
    """`_left_out(model, heads)` and the fields `empties` (as `_written_known` found them), as
    the serializer's `exclude`. Never changed: shared."""
    if not empties:
        return _left_out(model, heads)
    exclude: dict[str, Any] = dict.fromkeys(_left_out(model, heads), True)
    for head, name in empties:
        if name is None:
            exclude[head] = True
        elif exclude.get(head) is not True:
            exclude.setdefault(head, set()).add(name)
    return exclude


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
        if self.wholes is not None:
            known = values.known()
            if known is not None:
                if _reads_as_is(self, values.event.__class__, values.heads):
                    return known  # the same fields in the same order: shared, as parts of it are
                return {head: known[head] for head in self.wholes if head in known}
        subject: dict[str, Any] = {}
        for head, names in self.plain:
            if names is None:
                value = values.picked(head)
                if value is not None:
                    subject[head] = value
                continue
            part = values.fields(head, names)
            if part is not None:
                earlier = subject.get(head)  # never write into the shared values
                subject[head] = part if earlier is None else {**earlier, **part}
        return subject

    def subject_json(self, values: EventValues) -> bytes:
        """`to_json(self.subject(values))`: for a subject that is the event's known values as
        they are (`subject`'s shared case), written straight from the event (`known_json`)."""
        if self.wholes is not None and self.plain is not None and values.whole \
                and _reads_as_is(self, values.event.__class__, values.heads):
            return values.known_json()
        return to_json(self.subject(values))

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
