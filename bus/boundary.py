"""The trust boundary: bytes a sender wrote become a validated model or a refusal, never an echo.

Every service that reads what someone else wrote (an inbound event, a referral, a receipt, a
state record) decodes it here, so one set of rules holds everywhere:

- **Bounded before parsing.** Size first (an oversize message is refused before a byte of it is
  parsed), then standard JSON only (no NaN or Infinity, UTF-8, no lone surrogates), then the
  nesting depth and every string and key: no control characters (but tab and newlines), no
  bidirectional overrides, no over-long strings. Only then does the model see it.
- **Total.** `Contract.decode` turns any bytes into either the model or a `Refusal` with a stable
  reason code and the failing field *names*; it raises nothing a sender can cause.
- **Nothing echoed.** Refusals, field paths and dead letters carry codes, schema field names and
  ids only. pydantic's own messages embed inputs ("unknown event kind 'x'"): reasons here are
  fixed strings, and a key the schema does not know, or an id that is not a UUID, is shown as
  a short digest (`sha256:` + 12 hex), which a sender can compute to find its own mistake.
- **Bounded dead letters.** A dead letter keeps the original only up to `KEEP_ORIGINAL_BYTES`;
  beyond that a prefix, the size and a digest, so it always fits under the producer's limit.
- **A last resort.** `fault()` logs an unexpected exception of a per-message step with its type
  and code location only (a traceback can quote a report), so each service can turn it into
  one refused message (`internal_error`) and go on instead of crash-looping on the same offset.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

import pydantic_core
import structlog
from pydantic import TypeAdapter, ValidationError

from schemas.alerts import CaseChange, Escalation, ParkedAnswer, PoliceAlert, ReferralResponse, TrackedState
from schemas.answers import AnswerRequest, RefusedAnswer
from schemas.errors import FieldError
from schemas.events import (
    EVENT_ADAPTER,
    EVENT_MEMBERS,
    BroadcastRelease,
    CaseResolution,
    Event,
    Location,
    MissingChild,
    MissingChildReport,
    Person,
    Reporter,
    validate_natively,
)
from schemas.receipts import Receipt
from schemas.referrals import DeadLetter, Referral
from schemas.wire import UNSUPPORTED_VERSION

log = structlog.get_logger("boundary")

T = TypeVar("T")

#: Stable reason codes of a refusal (dead letters, receipts, 422 bodies, metric labels).
REASONS = ("empty_message", "too_large", "invalid_json", "too_deep", "invalid_string", "internal_error",
           UNSUPPORTED_VERSION)

#: A dead letter keeps the whole original up to this size (an event is far smaller: the intake
#: takes 64 KiB at most); beyond it, a prefix of `PREFIX_BYTES`, the size and the sha256.
KEEP_ORIGINAL_BYTES = 64 * 1024
PREFIX_BYTES = 1024
#: At most this many failing fields are listed; the rest are counted in one last entry.
MAX_FIELDS = 20
#: Submitted strings at least this long are never allowed to appear in a reason.
_ECHO_MIN_CHARS = 4

_ROOT = Path(__file__).resolve().parents[1]
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
# C0 controls but tab, LF and CR; DEL and C1; bidirectional embeddings, overrides and isolates
# (they make a log line or a receipt read differently from what it holds); lone surrogates;
# the two non-characters U+FFFE and U+FFFF.
_BAD_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
# What in a message's bytes can put such a character in a string or key the parser makes of
# them: the UTF-8 of DEL, of a C1 control, of a bidirectional control, of U+FFFE or U+FFFF, and
# the JSON escapes of any of those (or of a C0 control or a surrogate). The parser itself
# refuses the rest: a raw C0 control inside a string, ill-formed UTF-8 (so any encoded
# surrogate) and a lone surrogate escape (tests/unit/test_boundary.py checks that it still does).
# Each pattern starts with a fixed byte, which `re` finds at memchr speed.
_BAD_BYTES = (
    re.compile(rb"\\(?:[bf]|u(?:00[01]|00[79][fF]|00[89]|202[a-eA-E]|206[6-9]|[dD][89a-fA-F]|[fF]{3}[eEfF]))"),
    re.compile(rb"\xc2[\x80-\x9f]"),
    re.compile(rb"\xe2(?:\x80[\xaa-\xae]|\x81[\xa6-\xa9])"),
    re.compile(rb"\xef\xbf[\xbe\xbf]"),
)
#: Every byte but DEL and those `_BAD_BYTES` start with (deleted to find those in one pass).
_NOT_LEADS = bytes(b for b in range(256) if b not in b"\x7f\\\xc2\xe2\xef")
_PARSER_MESSAGE = re.compile(r"^[a-zA-Z ,]{3,60} at line \d{1,7} column \d{1,9}$")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`|\([^)]*\)")


@dataclass(frozen=True)
class Limits:
    """What a message may be before it is parsed. The defaults fit an event with room to spare."""

    max_bytes: int = 64 * 1024
    max_depth: int = 8
    max_string_chars: int = 8192
    max_key_chars: int = 64
    #: Values (strings, numbers, arrays, objects, keys) in one message: an event has a few dozen.
    max_values: int = 1024


class Position(NamedTuple):
    """Where a message came from: topic, partition, offset. (A named tuple: one per message a
    service reads, made in a third of a frozen dataclass's time.)"""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Refusal:
    """Why a message was not accepted: a stable code, the failing fields, and the ids it named.

    `event_id` is the canonical UUID when the message named a valid one, else a digest of what
    it named (`sha256:…`), else None. `reporter_agency` is a known agency code or None.
    """

    reason: str
    fields: tuple[FieldError, ...] = ()
    event_id: str | None = None
    reporter_agency: str | None = None

    def summary(self) -> str:
        """One line for operators: the reason and each failing field (no values)."""
        return f"{self.reason}: " + "; ".join(f"{f.field}: {f.reason}" for f in self.fields)


def digest(value: str | bytes) -> str:
    """A short, stable stand-in for text a sender wrote: `sha256:` + 12 hex."""
    data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return "sha256:" + hashlib.sha256(data).hexdigest()[:12]


def shown_id(value: object) -> str | None:
    """How an id a sender wrote may be shown: the canonical UUID, or a digest of anything else."""
    if value is None:
        return None
    if isinstance(value, str) and _UUID.match(value):
        return str(uuid.UUID(value))
    if isinstance(value, str):
        return digest(value)
    return digest(repr(value))


@dataclass(frozen=True)
class ValidateFirst(Generic[T]):
    """How a contract over a union (`Contract.members`) may validate a message before parsing it
    (`Contract._validated_first`)."""

    #: The member's tag a message's bytes seem to name (a guess: the model's own tag confirms it).
    tag_in_bytes: Callable[[bytes], str]
    #: The model the member of a tag makes of a message, or None where it might refuse it: a
    #: member's own validator, or a quicker one that accepts a part of what it accepts and makes
    #: the same models.
    validate: Callable[[str, bytes], T | None]
    #: Whether the screen's checks but the strings' (depth, number of values, key lengths, finite
    #: numbers) pass the message a validated model was made of: a sufficient condition, from
    #: what the model's schema allows.
    within: Callable[[T, Limits], bool]


class Contract(Generic[T]):
    """A model the boundary decodes into, with its limits and the reason code for invalid input.

    The names a refusal may show are the schema's own property names, computed once, on first
    use (no work at import).
    """

    def __init__(self, adapter: TypeAdapter[T], *, invalid: str, limits: Limits | None = None,
                 tags: Iterable[str] = (), known_agencies: Iterable[str] | None = None,
                 members: tuple[Callable[[Any], str], Mapping[str, TypeAdapter[T]]] | None = None,
                 validate_first: ValidateFirst[T] | None = None) -> None:
        self.adapter = adapter
        #: For an adapter that is a union with a discriminator function: that function, and a
        #: validator of each member by its tag. The function then runs on the message the
        #: boundary has already parsed, instead of on a copy pydantic-core would make of it.
        self.members = members
        #: For a union with `members`: how a message's model is validated before the message is
        #: parsed (`_validated_first`).
        self.validate_first = validate_first if members is not None else None
        self.invalid = invalid
        #: The union's tags, which pydantic puts first in an error's location: not a field (a
        #: tagged union's own are added with the names).
        self.tags = frozenset(tags)
        self.limits = limits or Limits()
        self._names: frozenset[str] | None = None
        self._agencies = frozenset(known_agencies) if known_agencies is not None else None

    @property
    def names(self) -> frozenset[str]:
        if self._names is None:
            self._names = frozenset(_property_names(self.adapter.json_schema()))
            self.tags |= _union_tags(self.adapter.core_schema)
        return self._names

    def agencies(self) -> frozenset[str]:
        if self._agencies is None:
            from rules.catalog import catalog

            self._agencies = frozenset(catalog().agencies)
        return self._agencies

    def decode(self, raw: bytes | None) -> T | Refusal:
        """The model, or why not. Never raises for anything in `raw`."""
        if not raw:
            return Refusal("empty_message", (FieldError(field="(message)", reason="no value"),))
        if len(raw) > self.limits.max_bytes:
            return Refusal("too_large", (FieldError(
                field="(message)", reason=f"larger than {self.limits.max_bytes} bytes"),),
                event_id=_sniff_event_id(raw[:4096]))
        if self.validate_first is not None and _strings_pass_on_bytes(raw, self.limits):
            model = self._validated_first(raw, self.validate_first)
            if model is not None:
                return model
        try:
            obj = pydantic_core.from_json(raw, allow_inf_nan=False)
        except ValueError as exc:
            if "recursion limit" in str(exc):
                return _too_deep(self.limits)
            return Refusal("invalid_json", (FieldError(field="(message)", reason=_json_reason(raw, str(exc))),))
        names = self.names
        # The screen's record of what the sender wrote is needed only to word a refusal: a
        # message that passes it (nearly all) is checked in one quick pass instead.
        found: _Seen | Refusal | None = None if _passes(obj, self.limits, raw) else _screen(obj, self.limits, names)
        if isinstance(found, Refusal):
            return Refusal(found.reason, found.fields, *self._ids(obj))
        try:
            if self.members is not None:
                # The member the union's discriminator would pick (the same function on the same
                # parsed message), validated directly; a refusal is worded by the union itself,
                # as before (its error locations start with the member's tag).
                tag_of, members = self.members
                member = members.get(tag_of(obj))
                if member is not None:
                    try:
                        return member.validate_json(raw)
                    except ValidationError:
                        pass
            return self.adapter.validate_json(raw)
        except ValidationError as exc:
            seen = found if found is not None else _screen(obj, self.limits, names)
            assert isinstance(seen, _Seen)  # it passed the screen
            # A schema major version this reader does not read is a reason of its own (schemas/wire.py).
            unsupported = any(e["type"] == UNSUPPORTED_VERSION for e in exc.errors(include_input=False))
            reason = UNSUPPORTED_VERSION if unsupported else self.invalid
            return Refusal(reason, safe_field_errors(exc, seen, names, self.tags), *self._ids(obj))

    def _validated_first(self, raw: bytes, first: ValidateFirst[T]) -> T | None:
        """The model of a message whose strings the bytes settle, validated before it is parsed,
        when that settles the outcome; else None, and the message is decoded as usual.

        It settles it when the member the bytes name makes a model of the message
        (`first.validate`), the member its own kind picks (what `decode` would validate), and
        the screen's limits on containers hold for that model (`first.within`). The parse
        `decode` would make then succeeds too: pydantic-core parses JSON as `from_json` does,
        but reads NaN and Infinity, which no member accepts (`within` says why). So the outcome
        is `decode`'s, in one parse instead of two; a refusal is still worded by the usual path
        (tests/unit/test_boundary_validate_first.py compares both on valid and hostile messages)."""
        assert self.members is not None
        tag_of = self.members[0]
        tag = first.tag_in_bytes(raw)
        model = first.validate(tag, raw)
        if model is None or tag_of(model) != tag or not first.within(model, self.limits):
            return None
        return model

    def _ids(self, obj: Any) -> tuple[str | None, str | None]:
        if not isinstance(obj, dict):
            return None, None
        event_id = shown_id(obj.get("event_id"))
        reporter = obj.get("reporter")
        agency = reporter.get("agency") if isinstance(reporter, dict) else None
        return event_id, agency if isinstance(agency, str) and agency in self.agencies() else None


def _property_names(schema: Any) -> Iterable[str]:
    if isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            yield from props
        for value in schema.values():
            yield from _property_names(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _property_names(value)


def _union_tags(core_schema: Any) -> frozenset[str]:
    """The tags of a top-level tagged union (pydantic names the member first in an error's location)."""
    inner = core_schema.get("schema", core_schema) if core_schema.get("type") == "definitions" else core_schema
    if inner.get("type") == "tagged-union":
        return frozenset(str(tag) for tag in inner.get("choices", {}))
    return frozenset()


def _too_deep(limits: Limits) -> Refusal:
    return Refusal("too_deep", (FieldError(field="(message)", reason=f"nested deeper than {limits.max_depth}"),))


def _json_reason(raw: bytes, parser_message: str) -> str:
    """Why the parser stopped, and where ("expected value at line 1 column 7"): the parser's
    message when it has its fixed form, which names a position and never the text there."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    if _PARSER_MESSAGE.match(parser_message):
        return f"not standard JSON (RFC 8259): {parser_message}"
    return "not standard JSON (RFC 8259)"


@dataclass
class _Seen:
    """Every string and key of a screened message: a reason must not repeat any of them."""

    strings: set[str] = field(default_factory=set)


def _screen(obj: Any, limits: Limits, names: frozenset[str]) -> _Seen | Refusal:
    """Depth, strings, keys and numbers of a parsed message, checked without recursion."""
    seen = _Seen()
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(obj, ())]
    values = 1
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict | list):
            values += len(value) * (2 if isinstance(value, dict) else 1)
            if values > limits.max_values:
                return Refusal("too_large", (FieldError(field="(message)",
                                                        reason=f"more than {limits.max_values} values"),))
        if len(path) > limits.max_depth:
            return _too_deep(limits)
        if isinstance(value, str):
            if len(value) > limits.max_string_chars:
                return _bad_string(path, names, seen, f"longer than {limits.max_string_chars} characters")
            if _BAD_CHAR.search(value):
                return _bad_string(path, names, seen, "control, bidirectional or surrogate character")
            seen.strings.add(value)
        elif isinstance(value, float) and not math.isfinite(value):
            return Refusal("invalid_json", (FieldError(field=_path(path, names, seen),
                                                       reason="not a finite number"),))
        elif isinstance(value, dict):
            for key, item in value.items():
                seen.strings.add(key)
                if len(key) > limits.max_key_chars or _BAD_CHAR.search(key):
                    return _bad_string((*path, key), names, seen, "not an acceptable field name")
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
    return seen


def _passes(obj: Any, limits: Limits, raw: bytes | None = None) -> bool:
    """Whether `_screen` finds nothing wrong with `obj`, decided in one pass without recording
    anything: containers walked by depth, then every string and key checked at once (lengths,
    and one search of the bad characters over all of them joined by a newline, which is no bad
    character itself). Exactly `_screen`'s checks (tests/unit/test_boundary.py compares them).

    Given `raw`, the bytes the parser made `obj` of, the strings' own checks are made on the
    bytes when that settles them (nearly always): no string is longer than the whole message,
    and no bytes could stand for a bad character (`_BAD_BYTES`)."""
    if raw is not None and _strings_pass_on_bytes(raw, limits):
        return _containers_pass(obj, limits)
    strings: list[str] = []
    keys: list[str] = []
    values = 1
    stack: list[tuple[Any, int]] = []
    kind = type(obj)
    if kind is dict or kind is list:
        stack.append((obj, 0))
    elif kind is str:
        strings.append(obj)
    elif kind is float and not math.isfinite(obj):
        return False
    while stack:
        container, depth = stack.pop()
        if container and depth >= limits.max_depth:
            return False  # a value below it would be deeper than the limit
        if type(container) is dict:
            values += 2 * len(container)
            keys.extend(container)
            items: Iterable[Any] = container.values()
        else:
            values += len(container)
            items = container
        for item in items:
            kind = type(item)
            if kind is str:
                strings.append(item)
            elif kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif kind is float and not math.isfinite(item):
                return False
    return (values <= limits.max_values
            and max(map(len, strings), default=0) <= limits.max_string_chars
            and max(map(len, keys), default=0) <= limits.max_key_chars
            and not _BAD_CHAR.search("\n".join(strings + keys)))


def _strings_pass_on_bytes(raw: bytes, limits: Limits) -> bool:
    """Whether the bytes settle that every string and key the parser can make of them passes the
    screen's own checks of strings: none longer than the message, and no bytes that could stand
    for a bad character (`_BAD_BYTES`). False only means 'look at the strings themselves'."""
    if len(raw) > limits.max_string_chars:
        return False
    # The bytes a pattern starts with, found in one pass: most messages hold none of them (then
    # nothing is searched), and a pattern is searched only when its first byte is there.
    leads = raw.translate(None, _NOT_LEADS)
    return not leads or (b"\x7f" not in leads
                         and (b"\\" not in leads or not _BAD_BYTES[0].search(raw))
                         and (b"\xc2" not in leads or not _BAD_BYTES[1].search(raw))
                         and (b"\xe2" not in leads or not _BAD_BYTES[2].search(raw))
                         and (b"\xef" not in leads or not _BAD_BYTES[3].search(raw)))


def _containers_pass(obj: Any, limits: Limits) -> bool:
    """`_passes` but for the strings' own checks (settled on the bytes): depth, number of values,
    key lengths and finite numbers, walked one level at a time."""
    kind = type(obj)
    if kind is float:
        return math.isfinite(obj)
    if kind is not dict and kind is not list:
        return True
    values = 1
    level: list[Any] = [obj]
    for depth in range(limits.max_depth + 1):
        below: list[Any] = []
        for container in level:
            if container and depth >= limits.max_depth:
                return False  # a value below it would be deeper than the limit
            if type(container) is dict:
                values += 2 * len(container)
                if container and max(map(len, container)) > limits.max_key_chars:
                    return False
                items: Iterable[Any] = container.values()
            else:
                values += len(container)
                items = container
            for item in items:
                kind = type(item)
                if kind is dict or kind is list:
                    below.append(item)
                elif kind is float and not math.isfinite(item):
                    return False
        if not below:
            break
        level = below
    return values <= limits.max_values


def _bad_string(path: tuple[str | int, ...], names: frozenset[str], seen: _Seen, reason: str) -> Refusal:
    return Refusal("invalid_string", (FieldError(field=_path(path, names, seen), reason=reason),))


def _path(path: Iterable[Any], names: frozenset[str], seen: _Seen) -> str:
    """A dotted field path with every part a sender chose (an unknown key) shown as a digest.

    pydantic adds parts of its own (union tags such as `int` or `constrained-str`): those that
    are neither schema names nor anything the sender wrote are dropped.
    """
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(str(part))
        elif part in names:
            parts.append(part)
        elif part in seen.strings or not isinstance(part, str):
            parts.append(digest(str(part)))
        elif part.startswith("function-"):
            continue
        # else: pydantic's own tag (a union member), dropped
    return ".".join(parts) or "(message)"


# pydantic error type -> a fixed reason. pydantic's messages for these types embed or may embed
# the input (a parsing error quotes the character it stopped at).
_FIXED_REASONS = {
    "missing": "required",
    "extra_forbidden": "not a field of this message",
    "json_invalid": "not valid JSON",
    "json_type": "not valid JSON",
    "uuid_parsing": "not a valid UUID",
    "uuid_type": "not a valid UUID",
    "uuid_version": "not a valid UUID",
    "datetime_parsing": "not a valid date-time (RFC 3339)",
    "datetime_type": "not a valid date-time (RFC 3339)",
    "datetime_from_date_parsing": "not a valid date-time (RFC 3339)",
    "datetime_object_invalid": "not a valid date-time (RFC 3339)",
    "date_parsing": "not a valid date",
    "timezone_aware": "needs a time zone offset",
    "union_tag_invalid": "not a known kind",
    "union_tag_not_found": "missing its kind",
    "string_type": "must be a string",
    "string_unicode": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "int_parsing_size": "integer out of range",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be an array",
    "tuple_type": "must be an array",
    "none_required": "must be null",
    "url_parsing": "not a valid URL",
    "url_type": "not a valid URL",
    "value_error": "invalid value",
    "assertion_error": "invalid value",
}
# Messages pydantic builds from the schema's constraints only (limits, expected literals).
_SCHEMA_MESSAGES = frozenset({
    "literal_error", "string_too_long", "string_too_short", "too_long", "too_short", "greater_than",
    "greater_than_equal", "less_than", "less_than_equal", "multiple_of", "string_pattern_mismatch",
    "enum", "timezone_aware", "missing",
    # The wire types' own refusals (schemas/wire.py): fixed texts, never the input.
    "uuid_form", "date_time_form", "schema_version_form", UNSUPPORTED_VERSION,
})


def safe_field_errors(exc: ValidationError, seen: _Seen | None = None, names: frozenset[str] = frozenset(),
                      tags: frozenset[str] = frozenset()) -> tuple[FieldError, ...]:
    """One entry per failing field: its path (schema names, digests for the sender's own keys)
    and a reason that repeats nothing the sender wrote. At most `MAX_FIELDS`, in order."""
    seen = seen or _Seen()
    # One entry per path: a value that fails every member of a union (`details` values may be a
    # string, a number, a boolean or null) would otherwise be listed once per member.
    # Reasons only for the fields listed: a message with thousands of unknown keys must cost
    # no more than one with twenty (each reason is checked against every string it holds).
    out: dict[str, str] = {}
    beyond: set[str] = set()
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = err["loc"][1:] if err["loc"] and err["loc"][0] in tags else err["loc"]
        path = _path(loc, names, seen)
        if path not in out and len(out) >= MAX_FIELDS - 1:
            beyond.add(path)
            continue
        reason = _reason(err["type"], err["msg"], seen, names)
        if path in out and out[path] != reason:
            reason = "none of the accepted types"
        out[path] = reason
    errors = [FieldError(field=f, reason=r) for f, r in out.items()]
    if beyond:
        errors.append(FieldError(field="(more)", reason=f"{len(beyond)} more failing fields"))
    return tuple(errors)


def _reason(kind: str, message: str, seen: _Seen, names: frozenset[str]) -> str:
    candidates: list[str] = []
    if kind in ("value_error", "assertion_error"):
        # Our own validators' messages: keep the words, drop anything quoted or parenthesised
        # ("unknown event kind 'x'" -> "unknown event kind").
        text = _QUOTED.sub("", message.removeprefix("Value error, ").removeprefix("Assertion failed, "))
        text = re.sub(r"\s+", " ", text).strip(" ,.:;").removesuffix(" such as").strip()
        if len(text) >= 8:
            candidates.append(text)
    elif kind in _SCHEMA_MESSAGES:
        candidates.append(message)
    candidates += [_FIXED_REASONS.get(kind, kind.replace("_", " ")), "invalid value", "invalid"]
    for candidate in candidates:
        if not _echoes(candidate, seen, names):
            return candidate[:200]
    return "(withheld)"


def reason_for(kind: str, message: str) -> str:
    """A reason for one pydantic error of a value the caller cannot list (an HTTP parameter)."""
    return _reason(kind, message, _Seen(), frozenset())


def _echoes(text: str, seen: _Seen, names: frozenset[str]) -> bool:
    """Whether `text` repeats a string the sender wrote (the schema's own field names aside)."""
    return any(len(s) >= _ECHO_MIN_CHARS and s in text and s not in names for s in seen.strings)


def _sniff_event_id(prefix: bytes) -> str | None:
    """The event id of an oversize message, if its first bytes name one as a UUID."""
    match = re.search(rb'"event_id"\s*:\s*"([0-9a-fA-F-]{36})"', prefix)
    return shown_id(match.group(1).decode()) if match else None


def sniff_ids(raw: bytes | None) -> tuple[str | None, str | None]:
    """(event id, reporter agency) of a message whatever it holds, for an internal-error record.

    Never raises: it is what the last resort calls when everything else failed.
    """
    try:
        if not raw or len(raw) > KEEP_ORIGINAL_BYTES:
            return (_sniff_event_id(raw[:4096]) if raw else None), None
        obj = pydantic_core.from_json(raw, allow_inf_nan=False)
        if isinstance(obj, dict):
            event_id = obj.get("event_id")
            return (event_id if isinstance(event_id, str) and _UUID.match(event_id) else None), None
    except Exception:
        pass
    return None, None


def dead_letter(refusal: Refusal, raw: bytes | None, position: Position, at: dt.datetime, *,
                service: str = "router") -> DeadLetter:
    """The dead-letter record of a refused message: reason, fields, ids, and the original bounded."""
    original = raw or b""
    kept = len(original) <= KEEP_ORIGINAL_BYTES
    return DeadLetter(
        reason=refusal.reason,
        errors=[{"field": f.field, "reason": f.reason} for f in refusal.fields],
        topic=position.topic, partition=position.partition, offset=position.offset,
        original_b64=base64.b64encode(original).decode() if kept else "",
        original_prefix_b64=None if kept else base64.b64encode(original[:PREFIX_BYTES]).decode(),
        original_size=len(original),
        original_sha256=hashlib.sha256(original).hexdigest(),
        received_at=at,
        event_id=refusal.event_id,
        reporter_agency=refusal.reporter_agency,
        service=service,
    )


def fault(step: str, exc: BaseException, **ids: object) -> Refusal:
    """The last resort of a per-message step: log the exception's type and where it was raised
    (never its message or traceback, which can quote what a sender wrote), and return the
    refusal that stands for the message (`internal_error`)."""
    where = _where(exc)
    log.error("internal_error", step=step, error=type(exc).__name__, where=where,
              **{k: v for k, v in ids.items() if isinstance(v, str | int) or v is None})
    return Refusal("internal_error", (FieldError(
        field="(message)", reason=f"unexpected {type(exc).__name__} in {step} at {where}"),))


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return "?"
    path = Path(last.tb_frame.f_code.co_filename)
    try:
        shown = str(path.resolve().relative_to(_ROOT))
    except ValueError:
        shown = path.name
    return f"{shown}:{last.tb_lineno}"


def describe(fields: Iterable[FieldError] | Iterable[Mapping[str, str]]) -> str:
    """`field: reason; …` for a log line."""
    parts = []
    for f in fields:
        if isinstance(f, FieldError):
            parts.append(f"{f.field}: {f.reason}")
        else:
            parts.append(f"{f['field']}: {f['reason']}")
    return "; ".join(parts)


_KIND_IN_BYTES = re.compile(rb'"kind"\s*:\s*"([a-z_]{1,64})"')


#: The members' tags by the kind that picks them, as bytes; any other kind picks `_OTHER_KINDS`.
_TAGS_OF_KINDS = {tag.encode(): EVENT_MEMBERS[0]({"kind": tag}) for tag in EVENT_MEMBERS[1]}
_OTHER_KINDS = EVENT_MEMBERS[0]({"kind": ""})


def _event_tag_in_bytes(raw: bytes) -> str:
    """The member of `AnyEvent` the first `"kind": "…"` in a message names."""
    found = _KIND_IN_BYTES.search(raw)
    return _TAGS_OF_KINDS.get(found[1], _OTHER_KINDS) if found else _OTHER_KINDS


# An event's containers are its models (the event, `reporter`, `person`, `location`,
# `last_seen_location`: none deeper than `person`), `person.wishes` and `details`; its numbers
# are finite (`lat` and `lon` are bounded, `details` numbers refuse NaN and infinities, an age
# is an integer). tests/unit/test_boundary_validate_first.py checks that the models still say so.
_EVENT_MODELS = (Event, MissingChildReport, CaseResolution, BroadcastRelease)
_EVENT_MODEL_VALUES = 1 + 2 * (max(len(model.model_fields) for model in _EVENT_MODELS) + len(Reporter.model_fields)
                               + max(len(Person.model_fields), len(MissingChild.model_fields))
                               + 2 * len(Location.model_fields))
_EVENT_LONGEST_NAME = max(len(name) for model in (*_EVENT_MODELS, Reporter, Person, MissingChild, Location)
                          for name in model.model_fields)


def _event_within(event: Event, limits: Limits) -> bool:
    """`ValidateFirst.within` for an event: an upper bound of the values the screen counts (every
    field of every model written, each wish, each detail), the longest key, and the depth."""
    details = event.details
    wishes = len(event.person.wishes) if event.person is not None else 0
    return (_EVENT_MODEL_VALUES + wishes + 2 * len(details) <= limits.max_values and limits.max_depth >= 3
            and limits.max_key_chars >= _EVENT_LONGEST_NAME
            and (not details or max(map(len, details)) <= limits.max_key_chars))


#: Inbound events (the router, the broadcast service, the intake's request bodies).
EVENT: Contract[Event] = Contract(EVENT_ADAPTER, invalid="invalid_event", members=EVENT_MEMBERS,
                                  validate_first=ValidateFirst(_event_tag_in_bytes, validate_natively, _event_within))
#: Referrals on an agency's topic (the delivery reader, `tail`).
REFERRAL: Contract[Referral] = Contract(TypeAdapter(Referral), invalid="invalid_referral")
#: Receipts on the receipts topic (the intake's receipt store).
RECEIPT: Contract[Receipt] = Contract(TypeAdapter(Receipt), invalid="invalid_receipt")

#: Answers on the answers topic (the alerts service), and answer request bodies (the intake).
ANSWER: Contract[ReferralResponse] = Contract(TypeAdapter(ReferralResponse), invalid="invalid_answer")
ANSWER_REQUEST: Contract[AnswerRequest] = Contract(TypeAdapter(AnswerRequest), invalid="invalid_answer")

#: The bus's own records, which only its services write: an alert (its subject), an escalation
#: (the alert it re-sends), the state of an alert or referral (its referral, its alert, its latest
#: escalation and its history) and a case (its clues) are larger and deeper than an event, but
#: still bounded: under the producer's 1 MB, and never a parser's recursion limit.
OWN_RECORDS = Limits(max_bytes=1_000_000, max_depth=12, max_values=200_000, max_string_chars=16_384)
POLICE_ALERT: Contract[PoliceAlert] = Contract(TypeAdapter(PoliceAlert), invalid="invalid_alert",
                                               limits=OWN_RECORDS)
ESCALATION: Contract[Escalation] = Contract(TypeAdapter(Escalation), invalid="invalid_escalation",
                                            limits=OWN_RECORDS)
TRACKED_STATE: Contract[TrackedState] = Contract(TypeAdapter(TrackedState), invalid="invalid_state",
                                                 limits=OWN_RECORDS)
CASE_CHANGE: Contract[CaseChange] = Contract(TypeAdapter(CaseChange), invalid="invalid_case", limits=OWN_RECORDS)
#: A parked value: the answers waiting for one alert or referral (or, as written before the bus
#: dated answers itself, the bare answers).
PARKED: Contract[list[ParkedAnswer | ReferralResponse]] = Contract(
    TypeAdapter(list[ParkedAnswer | ReferralResponse]), invalid="invalid_parked", limits=OWN_RECORDS)
#: Refused answers (the duty console shows its own officers' on their cards).
REFUSED_ANSWER: Contract[RefusedAnswer] = Contract(TypeAdapter(RefusedAnswer), invalid="invalid_refusal")
