"""The wire types: what every message model on the bus is built from.

The published JSON Schemas must accept exactly what the services accept (issue #18), so each
type here means the same in the model and in its schema:

- `Str`, `Int`, `Number`, `Bool`: a JSON value of that type and no other (no "6" for 6, no
  "true" for true, no whitespace trimmed). An `Int` may be written `6.0`: JSON Schema counts a
  number with a zero fraction as an integer, and so does the model.
- `Uuid`: one form, lowercase hyphenated (`6f1c2a4e-8d2b-4c4e-9f61-0c1d2e3f4a5b`); no braces, no
  `urn:uuid:`, no capitals, no missing hyphens, so an id has one spelling everywhere it is filed.
- `Timestamp`: RFC 3339 with a `T`, seconds and an offset (`Z` or `±HH:MM`), up to 9 fraction
  digits (kept to the microsecond); not a number, not a date alone. The pattern below says it;
  that the date exists (no 30 February) is the schema's `format: date-time`.
- `schema_version`: every message says which version of its schema it follows (see `Message`).

Patterns use explicit ASCII classes (`[0-9]`, never `\\d` or `\\s`), which every regex dialect
(ECMA-262 in JSON Schema, Rust in pydantic, Python's `re`) reads alike.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any, ClassVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    Strict,
    WithJsonSchema,
)
from pydantic_core import CoreSchema, PydanticCustomError
from pydantic_core import core_schema as cs

UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_YEAR = "(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
DATE_TIME_PATTERN = (
    f"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?"
    "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
#: A free-text answer field that says something: one character that is not a space or line break.
NOT_BLANK_PATTERN = "[^ \t\r\n]"


def python_regex(pattern: str) -> re.Pattern[str]:
    """The same pattern for Python's `re`, whose `$` would also match before a final newline."""
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


_UUID = python_regex(UUID_PATTERN)
_DATE_TIME = python_regex(DATE_TIME_PATTERN)


_UUID_FORM = ("uuid_form", "must be a UUID in lowercase hyphenated form "
                           "(8-4-4-4-12 hex digits, e.g. 6f1c2a4e-8d2b-4c4e-9f61-0c1d2e3f4a5b)")
_DATE_TIME_FORM = ("date_time_form", "must be an RFC 3339 date-time with seconds and an offset, "
                                     "e.g. 2026-11-20T08:00:00+08:00")


def _canonical_uuid(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and _UUID.search(value):
        return uuid.UUID(value)
    raise PydanticCustomError(*_UUID_FORM)


def _rfc3339(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _DATE_TIME.search(value):
        return value
    raise PydanticCustomError(*_DATE_TIME_FORM)


def _from_json(json_schema: CoreSchema) -> GetPydanticSchema:
    """Validate JSON input with `json_schema` (pydantic-core alone, no Python call per value),
    and Python input (models the services build, HTTP parameters) as the annotations before
    this one say. The JSON schema must accept and refuse exactly what those do, with the same
    error types and messages (tests/unit/test_wire_native.py compares them)."""

    def build(source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return cs.json_or_python_schema(json_schema=json_schema, python_schema=handler(source))

    return GetPydanticSchema(build)


def _form(schema: CoreSchema, error: tuple[str, str]) -> CoreSchema:
    """`schema`, with any error it raises reported as `error` (type, message): the same error
    the Python validator above raises."""
    return cs.custom_error_schema(schema, custom_error_type=error[0], custom_error_message=error[1])


# In JSON a UUID is a string of the one form (the pattern, in pydantic-core's own regex engine:
# its `$` is the end of the text, like Python's `\Z`), then made a UUID by pydantic-core.
_UUID_FROM_JSON = _form(cs.chain_schema([cs.str_schema(strict=True, pattern=UUID_PATTERN), cs.uuid_schema()]),
                        _UUID_FORM)
# A date-time is a string of the pattern's form, then parsed (a date that does not exist is
# pydantic's own error, as it is after `_rfc3339`).
_DATE_TIME_FROM_JSON = cs.chain_schema([
    _form(cs.str_schema(strict=True, pattern=DATE_TIME_PATTERN), _DATE_TIME_FORM),
    cs.datetime_schema(tz_constraint="aware"),
])


def integral(value: Any) -> Any:
    # 6.0 is the integer 6 in JSON (and in JSON Schema's `integer`); 6.5 and "6" are not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Uuid = Annotated[uuid.UUID, BeforeValidator(_canonical_uuid), _from_json(_UUID_FROM_JSON),
                 WithJsonSchema({"type": "string", "format": "uuid", "pattern": UUID_PATTERN})]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339), _from_json(_DATE_TIME_FROM_JSON),
                      WithJsonSchema({"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN})]
Str = Annotated[str, Strict()]
Int = Annotated[int, Strict(), BeforeValidator(integral)]
Number = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]


class WireModel(BaseModel):
    """A part of a message: closed (an unknown field is refused), immutable, strict types."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ---- Versions -------------------------------------------------------------------------------

_VERSION = re.compile(r"(0|[1-9][0-9]*)[.](0|[1-9][0-9]*)\Z")


def version_check(major: int) -> Any:
    """The check of `schema_version` for a message at `major`: readers take any minor of their
    major (minors only add optional fields) and refuse another major with `unsupported_schema_version`."""

    def check(value: Any) -> Any:
        if not isinstance(value, str) or (m := _VERSION.match(value)) is None:
            raise PydanticCustomError("schema_version_form", "schema_version must be 'MAJOR.MINOR', e.g. '1.0'")
        if int(m[1]) != major:
            raise PydanticCustomError(
                "unsupported_schema_version",
                "unsupported major version of this message's schema: this reader reads {major}.x",
                {"major": major})
        return value

    return BeforeValidator(check)


def version_schema(major: int, minor: int) -> WithJsonSchema:
    return WithJsonSchema({
        "type": "string", "pattern": f"^{major}[.](0|[1-9][0-9]*)$", "default": f"{major}.{minor}",
        "description": f"The version of this message's schema, MAJOR.MINOR (this one: {major}.{minor}). "
                       "Readers refuse another major version; a minor version only adds optional fields. "
                       f"Absent means {major}.0.",
    })


SchemaVersion1 = Annotated[str, Strict(), version_check(1), version_schema(1, 0)]


class Message(WireModel):
    """A message on a topic: carries `schema_version` (absent on the wire: 1.0).

    Why a field rather than a Kafka header: the version travels with the message wherever its
    bytes go — the intake's HTTP body, a dead letter's `original_b64`, an exported file that
    `referral-bus replay` or `contract check` reads, the faust tables' changelogs (written and
    restored by faust without headers) — and the published schema, which any client's validator
    applies, checks it like every other field. A model whose schema changes incompatibly
    redeclares the field as `Annotated[str, version_check(2), version_schema(2, 0)]`, default "2.0".
    """

    #: Rules the model enforces that its JSON Schema cannot state, by name (published in its
    #: description and in the AsyncAPI document).
    RULES: ClassVar[dict[str, str]] = {
        "real_dates": "every date-time names a real calendar date and time (the schema's format: date-time).",
    }

    schema_version: SchemaVersion1 = Field(default="1.0")


UNSUPPORTED_VERSION = "unsupported_schema_version"
