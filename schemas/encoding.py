"""Encoding messages the bus builds itself, without building and validating a model first: the
bytes `Model(**values).model_dump_json()` would give, from the values.

The router writes a dozen messages per event from values it built from a validated event and
validated rule packs; validating them again into models only to serialise them cost more than
routing (benchmarks/step.py). `dump_values` serialises the values as the model's fields, in the
model's order with its defaults (`schema_version` first, as every message writes it), in one
call of pydantic's own serializer: same formats (times, UUIDs, escaping, non-ASCII text as
UTF-8), same bytes. It is for models without custom serializers, and for values of the
fields' own types (the bus's, not a sender's); `tests/unit/test_encoding.py` compares it with
the model's own output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_json

__all__ = ["Template", "Uuid5", "built", "dump_values", "made", "model_values", "template", "text_json", "utc_json",
           "utc_now_json"]

M = TypeVar("M", bound=BaseModel)


@cache
def _shape(model: type[BaseModel]) -> tuple[tuple[str, ...], tuple[tuple[str, Any], ...]]:
    """The model's field names, and (name, default or PydanticUndefined when required), in the
    model's order."""
    out = []
    for name, info in model.model_fields.items():
        if info.default_factory is not None:
            out.append((name, _Factory(info.default_factory)))
        else:
            out.append((name, info.default))
    return tuple(model.model_fields), tuple(out)


@cache
def _plain_leads(model: type[BaseModel]) -> int:
    """How many of the model's first fields have a default that is a plain value (no factory)."""
    n = 0
    for _, default in _shape(model)[1]:
        if default is PydanticUndefined or isinstance(default, _Factory):
            break
        n += 1
    return n


@cache
def _leading_defaults(model: type[BaseModel], lead: int) -> dict[str, Any]:
    """The plain defaults of the model's first `lead` fields (never changed: copied from)."""
    return dict(_shape(model)[1][:lead])


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Any) -> None:
        self.make = make


def dump_values(model: type[BaseModel], values: Mapping[str, Any]) -> bytes:
    """`model(**values).model_dump_json().encode()` for values the bus built itself (of the
    fields' own types: nested models as instances or as `model_values`, tuples, UUIDs, aware
    datetimes), without building or validating the model. A missing required field raises
    KeyError; an unknown one is refused (ValueError), as the models forbid extra fields."""
    return to_json(model_values(model, values))


def model_values(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` as the fields of `model` in its order, defaults filled in: what `dump_values`
    serialises, and how to pass a nested model's values to it."""
    names, defaults = _shape(model)
    if isinstance(values, dict):
        keys = tuple(values)
        if keys == names:
            return values  # every field, in order: as it is
        lead = len(names) - len(keys)
        if 0 < lead <= _plain_leads(model) and keys == names[lead:]:
            # Every field after leading ones that have plain defaults (`schema_version`).
            return {**_leading_defaults(model, lead), **values}
    data: dict[str, Any] = {}
    given = 0
    for name, default in defaults:
        if name in values:
            data[name] = values[name]
            given += 1
        elif default is PydanticUndefined:
            raise KeyError(f"{model.__name__}.{name} is required")
        else:
            data[name] = default.make() if isinstance(default, _Factory) else default
    if given != len(values):
        raise ValueError(f"{model.__name__} has no field {sorted(set(values) - set(data))}")
    return data


def built(model: type[M], values: dict[str, Any], fields_set: set[str]) -> M:
    """The instance `model.model_construct(**values)` makes, for `values` that hold every field
    in the model's order (a template's values with an event's): without `model_construct`'s
    walk over the fields, which cost more than the rest of building a referral. Owns `values`.
    `fields_set` may be shared by instances of a frozen model that were all given the same
    fields: pydantic copies it for `model_copy`, and a frozen model never adds to it."""
    instance = _new(model)
    # BaseModel's own slots, set through their descriptors: half the time of `object.__setattr__`
    # by name (a referral is built per duty per event).
    _set_dict(instance, values)
    _set_fields_set(instance, fields_set)
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


_new = object.__new__

#: `made(Point, (x, y))` is `Point(x, y)` for a named tuple given every field: the tuple made at
#: once, without the named tuple's own `__new__`, a Python call that costs three times as much
#: (the router makes a dozen messages and some referrals per event).
made: Callable[[type[Any], tuple[Any, ...]], Any] = tuple.__new__
_set_dict, _set_fields_set, _set_extra, _set_private = (
    BaseModel.__dict__[slot].__set__
    for slot in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"))


class Template:
    """A message of one model with some of its fields written once (`template`), and the others
    filled in per message (`write`) with their JSON (`to_json(value)`, which may be shared by
    messages too: an event's fields, a deadline). A model writes `{"name":value,...}` with its
    fields in order and nothing between them, so these are the bytes `dump_values` writes
    (tests/unit/test_encoding.py compares them)."""

    __slots__ = ("_format", "_pick", "holes", "texts")

    def __init__(self, texts: list[bytes], holes: tuple[str, ...]) -> None:
        #: The fields written per message, in the model's order.
        self.holes = holes
        #: The written parts, one more than the holes: a message is them and its holes' JSON
        #: alternately (for a writer that joins parts of its own, `schemas.receipts`).
        self.texts = tuple(texts)
        # The written parts with a `%b` for each hole (any `%` of theirs doubled), filled in C.
        self._format = b"%b".join(text.replace(b"%", b"%%") for text in texts)
        self._pick: Callable[[Mapping[str, bytes]], Any] = (
            itemgetter(*holes) if len(holes) > 1 else lambda parts: tuple(parts[name] for name in holes))

    def write(self, parts: Mapping[str, bytes]) -> bytes:
        """The message, given the JSON of each of its `holes`."""
        written: bytes = self._format % self._pick(parts)
        return written

    def fill(self, *parts: bytes) -> bytes:
        """The message, given the JSON of each of its `holes` in their order (`write` without
        the mapping, for messages written from parts at hand)."""
        written: bytes = self._format % parts
        return written


def template(model: type[BaseModel], holes: tuple[str, ...], fixed: Mapping[str, Any]) -> Template:
    """`model`'s messages with every field but `holes` written once: its value in `fixed`, else
    the model's default, as `dump_values` writes them. `holes` are filled per message by
    `Template.write`. A field that is neither a hole nor fixed and has no plain default raises
    KeyError; an unknown field, ValueError."""
    names, defaults = _shape(model)
    unknown = (set(fixed) | set(holes)) - set(names)
    if unknown:
        raise ValueError(f"{model.__name__} has no field {sorted(unknown)}")
    texts: list[bytes] = []
    text = b""
    for i, (name, default) in enumerate(defaults):
        text += (b'{"' if i == 0 else b',"') + name.encode() + b'":'
        if name in holes:
            texts.append(text)
            text = b""
        elif name in fixed:
            text += to_json(fixed[name])
        elif default is PydanticUndefined or isinstance(default, _Factory):
            raise KeyError(f"{model.__name__}.{name} is required")
        else:
            text += to_json(default)
    texts.append(text + b"}")
    return Template(texts, tuple(name for name in names if name in holes))


@lru_cache(maxsize=4096)
def text_json(text: str) -> bytes:
    """`to_json(text)`, remembered: for the bus's own words written in every message (agency
    codes, roles, rule ids, actions, clauses), which a dict lookup finds sooner than pydantic
    writes them. Bounded, so that a sender's words passed by mistake cannot fill memory."""
    return to_json(text)


def utc_now_json() -> bytes:
    """`to_json(dt.datetime.now(dt.UTC))`: the time the router stamps on a receipt and on audit
    records, at half the cost (no datetime made and serialised per message)."""
    return utc_json(_time_ns() // 1000)


def utc_json(microseconds: int) -> bytes:
    """`to_json` of the UTC time `microseconds` after the epoch, as pydantic writes a UTC datetime
    (`"2026-12-06T17:17:57.232407Z"`, no fraction when it is zero): the date and time of the
    second written once per second (`_utc_second`), the fraction here."""
    seconds, fraction = divmod(microseconds, 1_000_000)
    return b'%b.%06dZ"' % (_utc_second(seconds), fraction) if fraction else _utc_second(seconds) + b'Z"'


_time_ns = time.time_ns


@lru_cache(maxsize=4)
def _utc_second(seconds: int) -> bytes:
    """The JSON of a UTC second up to its last digit (`"2026-12-06T17:17:57`), written by pydantic."""
    return to_json(dt.datetime.fromtimestamp(seconds, dt.UTC))[:20]


#: The version (4 bits at 76) and the variant (2 bits at 62) of a UUID's 128-bit number: what
#: `uuid.UUID(..., version=5)` clears and sets.
_CLEAR_VERSION_AND_VARIANT = ~(0xF000 << 64 | 0xC000 << 48)
_VERSION_5_RFC_4122 = 5 << 76 | 0x8000 << 48
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown
#: `UUID`'s slots, set through their descriptors (as `built` does).
_set_uuid_int, _set_uuid_safety = uuid.UUID.__dict__["int"].__set__, uuid.UUID.__dict__["is_safe"].__set__


class Uuid5:
    """uuid5(namespace, prefix + suffix) for many suffixes after one prefix, with the namespace
    and the prefix hashed once (uuid5 is the SHA-1 of namespace and name). A prefix or suffix
    is text, or the same text as UTF-8 (what the bus keeps at hand: an id's JSON without its
    quotes). `json(suffix)` gives an id's JSON, for ids that are only written; `text(suffix)` its
    text (`str(uuid)`) without building the UUID object."""

    __slots__ = ("_hash",)

    def __init__(self, namespace: uuid.UUID, prefix: str | bytes) -> None:
        # A copy of the namespace's hash, rather than a new hash of its bytes: a Uuid5 is made
        # per event (its id is the prefix), and `UUID.bytes` and a new SHA-1 cost 4x a copy.
        self._hash = _namespace_hash(namespace).copy()
        self._hash.update(prefix.encode() if isinstance(prefix, str) else prefix)

    def after(self, more: str | bytes) -> Uuid5:
        """`Uuid5(namespace, prefix + more)`, from this one's hash (the namespace's and prefix's):
        for a prefix per event after one fixed part, without finding the namespace's hash again."""
        hashed = self._hash.copy()
        hashed.update(more.encode() if isinstance(more, str) else more)
        made: Uuid5 = _new(Uuid5)
        _set_hash(made, hashed)
        return made

    def _digest(self, suffix: str | bytes) -> bytes:
        digest = self._hash.copy()
        digest.update(suffix.encode() if isinstance(suffix, str) else suffix)
        return digest.digest()

    def __call__(self, suffix: str | bytes) -> uuid.UUID:
        return _uuid_of(self._digest(suffix))

    def with_json(self, suffix: str | bytes) -> tuple[uuid.UUID, bytes]:
        """The id and its JSON (`to_json(str(id))`), for ids that are both kept and written.
        (pydantic-core writes a UUID's text faster than Python formats the digest's hex.)"""
        made = _uuid_of(self._digest(suffix))
        return made, to_json(made)

    def json(self, suffix: bytes) -> bytes:
        """The id as its JSON (`to_json(self(suffix))`), for a suffix given as UTF-8: for ids
        written straight into messages, from the digest's hex (without the UUID object, which
        costs more than writing its text)."""
        digest = self._hash.copy()
        digest.update(suffix)
        # `_text_of(digest.hexdigest(), '"')`, in line: the router writes a dozen ids per event.
        h = digest.hexdigest()
        return f'"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"'.encode()

    def text(self, suffix: str | bytes) -> str:
        return _text_of(self._digest(suffix).hex())


_set_hash = Uuid5.__dict__["_hash"].__set__


class _Hash(Protocol):
    """What `Uuid5` uses of a hashlib hash."""

    def copy(self) -> _Hash: ...
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...


@lru_cache(maxsize=64)
def _namespace_hash(namespace: uuid.UUID) -> _Hash:
    """The SHA-1 state after a namespace's 16 bytes, copied by each `Uuid5` of it (never updated)."""
    return hashlib.sha1(namespace.bytes, usedforsecurity=False)


def _uuid_of(digest: bytes) -> uuid.UUID:
    """`uuid.UUID(bytes=digest[:16], version=5)`, without `UUID.__init__`'s checks of its
    arguments (half of an id's cost): the digest is ours and the bits are set here."""
    made = _new(uuid.UUID)
    _set_uuid_int(made, int.from_bytes(digest[:16]) & _CLEAR_VERSION_AND_VARIANT | _VERSION_5_RFC_4122)
    _set_uuid_safety(made, _UNKNOWN_SAFETY)
    return made


def _text_of(hexdigest: str, quote: str = "") -> str:
    """`str(_uuid_of(digest))` from the digest's hex, between `quote`s (`"`: its JSON): the version
    (5) in the 13th hex digit, the RFC 4122 variant in the top bits of the 17th."""
    h = hexdigest
    return f"{quote}{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}{quote}"


#: The 17th hex digit of a UUID with the RFC 4122 variant, for each digit of the hash there.
_VARIANT = {f"{n:x}": "89ab"[n & 3] for n in range(16)}
