"""Events that reporting agencies publish on the bus.

Every event shares one envelope (`Event`); a few kinds carry fields of their own and have their
own model (`MissingChildReport`, `CaseResolution`, `BroadcastRelease`). `parse_event` picks the
model from `kind`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    Strict,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import SchemaValidator
from pydantic_core import core_schema as cs

from rules.catalog import catalog
from schemas.wire import Bool, Int, Message, Number, Str, Timestamp, Uuid, WireModel, integral

#: ISO 3166-1 alpha-2, as the plans' foreign victims are told apart from Chinese ones ("CN").
ISO_ALPHA2_PATTERN = "^[A-Z]{2}$"


def _known_kind(value: str) -> str:
    if value not in catalog().event_kinds:
        raise ValueError(f"unknown event kind {value!r}")
    return value


def _known_jurisdiction(value: str) -> str:
    if value not in catalog().jurisdictions:
        known = ", ".join(sorted(catalog().jurisdictions))
        raise ValueError(f"unknown jurisdiction {value!r} (known: {known})")
    return value


def _known_agency(value: str) -> str:
    if value not in catalog().agencies:
        raise ValueError(f"unknown agency code {value!r}")
    return value


def _enum_of(codes: Callable[[], Iterable[str]]) -> Callable[[dict[str, Any]], None]:
    """JSON Schema `enum` from the catalog, computed when a schema is generated (not at import)."""

    def extra(schema: dict[str, Any]) -> None:
        schema["enum"] = sorted(codes())

    return extra


KindCode = Annotated[Str, AfterValidator(_known_kind),
                     Field(json_schema_extra=_enum_of(lambda: catalog().event_kinds))]
JurisdictionCode = Annotated[Str, AfterValidator(_known_jurisdiction),
                             Field(json_schema_extra=_enum_of(lambda: catalog().jurisdictions))]
AgencyCode = Annotated[Str, AfterValidator(_known_agency),
                       Field(json_schema_extra=_enum_of(lambda: catalog().agencies))]
# The bounds inside the type, so that they reach the JSON Schema inside `... | None` too (a
# bound on the field would be written there as an unknown keyword).
Age = Annotated[int, Strict(), Field(ge=0, le=130), BeforeValidator(integral)]
ChildAge = Annotated[int, Strict(), Field(ge=0, le=17), BeforeValidator(integral)]
Sex = Literal["female", "male", "unknown"]
Disability = Literal["none", "physical", "intellectual", "mental", "visual", "hearing", "speech",
                     "multiple", "unknown"]
Wish = Literal["stay_in_marriage", "return_home_country", "stay_in_china", "return_home",
               "unknown"]


class Reporter(WireModel):
    """Who published the event: an agency code (null for the public) and the reporter's role."""

    agency: AgencyCode | None = None
    role: Str = Field(min_length=1, max_length=64)


class Person(WireModel):
    """The child or victim the event is about. Unknown values are allowed (null)."""

    age: Age | None = None
    sex: Sex | None = None
    nationality: Str | None = Field(default=None, pattern=ISO_ALPHA2_PATTERN,
                                    description="ISO 3166-1 alpha-2 code, e.g. CN")
    disability: Disability | None = None
    ethnicity: Str | None = Field(default=None, max_length=64)
    wishes: tuple[Wish, ...] = ()
    willing_to_return_home: Bool | None = None
    cannot_or_will_not_return_home: Bool | None = None
    willing_to_train: Bool | None = None
    poor: Bool | None = None
    coerced: Bool | None = None
    adopted: Bool | None = None
    origin_unknown: Bool | None = None
    parents_found: Bool | None = None
    schooling_needs: Str | None = Field(default=None, max_length=500)
    # Identifying fields: need-to-know only (see rules/catalog/projections.yaml), never logged.
    name: Str | None = Field(default=None, max_length=200)
    id_number: Str | None = Field(default=None, max_length=64)
    distinguishing_features: Str | None = Field(default=None, max_length=1000)
    photo_url: Str | None = Field(default=None, max_length=2000)

    @property
    def is_child(self) -> bool | None:
        """Under 18, as the 2021 plans use 儿童 (null when the age is unknown)."""
        return None if self.age is None else self.age < 18

    @property
    def is_foreign(self) -> bool | None:
        return None if self.nationality is None else self.nationality != "CN"


class Location(WireModel):
    """Where it happened. `place` is a coarse public name; `address` is need-to-know."""

    place: Str | None = Field(default=None, max_length=200)
    address: Str | None = Field(default=None, max_length=500)
    lat: Annotated[Number, Field(ge=-90, le=90)] | None = None
    lon: Annotated[Number, Field(ge=-180, le=180)] | None = None


class Event(Message):
    """The envelope every reporting agency publishes; `event_id` is the idempotency key."""

    RULES: ClassVar[dict[str, str]] = {
        **Message.RULES,
        "reported_after_occurred": "reported_at is not earlier than occurred_at (compared as instants: "
                                   "2026-11-20T08:00:00+08:00 equals 2026-11-20T00:00:00Z).",
    }

    event_id: Uuid
    kind: KindCode
    jurisdiction: JurisdictionCode
    occurred_at: Timestamp
    reported_at: Timestamp
    reporter: Reporter
    person: Person | None = None
    location: Location | None = None
    description: Str = Field(default="", max_length=4000)
    exercise: Bool = Field(default=False, description="A drill: routed like a real event, marked everywhere.")
    case_id: Uuid | None = Field(default=None, description="The case this event belongs to, when known.")
    suspicion: Str | None = Field(default=None, max_length=64,
                                  description="What the reporter suspects, e.g. trafficking_or_related_crime")
    details: dict[str, Str | Int | Number | Bool | None] = Field(
        default_factory=dict, description="Kind-specific facts the plans' conditions may test.")

    @model_validator(mode="after")
    def _reported_after_occurred(self) -> Event:
        if self.reported_at < self.occurred_at:
            raise ValueError("reported_at is earlier than occurred_at")
        return self


class MissingChild(Person):
    """The child of a missing-child report: someone under 18 (the plans' 儿童)."""

    age: ChildAge | None = Field(
        default=None, description="Under 18: a missing-child report is about a child.")


class MissingChildReport(Event):
    """A child reported missing: starts the rapid-search mechanism (儿童失踪快速查找机制)."""

    kind: Literal["child_missing_reported"]
    person: MissingChild
    last_seen_at: Timestamp
    last_seen_location: Location


class CaseResolution(Event):
    """The police close a case (一长三包: only a resolution closes it)."""

    kind: Literal["case_resolved"]
    case_id: Uuid
    outcome: Literal["found_alive", "found_deceased", "closed_other"]


class BroadcastRelease(Event):
    """Police ask for a missing child's public broadcast (团圆 platform; 西安 第五条)."""

    kind: Literal["missing_child_info_release"]
    case_id: Uuid
    guardian_consent: Bool
    public_contact: Str = Field(min_length=3, max_length=64)


_SPECIFIC: dict[str, type[Event]] = {
    "child_missing_reported": MissingChildReport,
    "case_resolved": CaseResolution,
    "missing_child_info_release": BroadcastRelease,
}


def _event_tag(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    # A non-string kind (a list, an object) is unhashable: let the plain model report the field.
    return kind if isinstance(kind, str) and kind in _SPECIFIC else "event"


AnyEvent = Annotated[
    Annotated[MissingChildReport, Tag("child_missing_reported")]
    | Annotated[CaseResolution, Tag("case_resolved")]
    | Annotated[BroadcastRelease, Tag("missing_child_info_release")]
    | Annotated[Event, Tag("event")],
    Discriminator(_event_tag),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(AnyEvent)
#: The discriminator and each member of `AnyEvent` by its tag (`bus.boundary` picks the member
#: with the message it has parsed: in `EVENT_ADAPTER`, pydantic-core would first copy the whole
#: message into Python objects to call `_event_tag`).
_MEMBERS: dict[str, type[Event]] = {**_SPECIFIC, "event": Event}
EVENT_MEMBERS: tuple[Callable[[Any], str], dict[str, TypeAdapter[Event]]] = (
    _event_tag, {tag: TypeAdapter(model) for tag, model in _MEMBERS.items()})


def _natively(schema: Any, codes: dict[Callable[[str], str], Iterable[str]], in_union: bool = False) -> Any:
    """A copy of a member's core schema, JSON input only, with the Python calls pydantic-core can
    do alone done by it: each catalog code's check a literal of the codes (`codes`), an integer
    field (not in a union, where `integral` picks the member) an integer alone. (The model's
    own check, `_reported_after_occurred`, stays: on the event, it would cost as much.)"""
    if isinstance(schema, list):
        return [_natively(item, codes, in_union) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    function = schema["function"].get("function") if kind in ("function-after", "function-before") else None
    if kind == "function-after" and function in codes and schema["schema"] == {"type": "str", "strict": True}:
        return cs.literal_schema(sorted(codes[function]))
    if kind == "function-before" and function is integral and not in_union:
        return _natively(schema["schema"], codes, in_union)
    return {key: _natively(value, codes, in_union or kind in ("union", "tagged-union"))
            for key, value in schema.items()}


#: The members' native validators (`_natively`), for the catalog they were made from.
_NATIVE: tuple[object, dict[str, SchemaValidator]] | None = None


def validate_natively(tag: str, raw: bytes) -> Event | None:
    """`EVENT_MEMBERS[1][tag].validate_json(raw)`, when pydantic-core alone settles it; None when
    it may not (the member must then be asked: a refusal is always worded by the member itself).

    The native validator accepts a part of what the member accepts, and makes the same event of
    it: the same codes (the catalog's, as a literal), an integer written as an integer (6.0 is
    left to the member); tests/unit/test_boundary_validate_first.py compares them."""
    native = _NATIVE
    if native is None or native[0] is not catalog():
        native = _native_validators()
    validator = native[1].get(tag)
    if validator is None:
        return None
    try:
        event: Event = validator.validate_json(raw)
    except ValidationError:
        return None
    return event


def _native_validators() -> tuple[object, dict[str, SchemaValidator]]:
    global _NATIVE
    cat = catalog()
    codes: dict[Callable[[str], str], Iterable[str]] = {
        _known_kind: cat.event_kinds, _known_jurisdiction: cat.jurisdictions, _known_agency: cat.agencies}
    _NATIVE = (cat, {name: SchemaValidator(_natively(adapter.core_schema, codes))
                     for name, adapter in EVENT_MEMBERS[1].items()})
    return _NATIVE


def parse_event(raw: bytes | str) -> Event:
    """Validate one JSON event; raises `pydantic.ValidationError` naming each bad field."""
    return EVENT_ADAPTER.validate_json(raw)


def parse_event_obj(obj: Any) -> Event:
    return EVENT_ADAPTER.validate_python(obj)
