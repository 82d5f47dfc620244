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

import hashlib
import uuid
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_json

__all__ = ["Uuid5", "dump_values", "model_values"]


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
            return {**{name: default for name, default in defaults[:lead]}, **values}
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


class Uuid5:
    """uuid5(namespace, prefix + suffix) for many suffixes after one prefix, with the namespace
    and the prefix hashed once (uuid5 is the SHA-1 of namespace and name). `text(suffix)` gives
    the id as text (`str(uuid)`) without building the UUID object, for ids that are only written."""

    __slots__ = ("_hash",)

    def __init__(self, namespace: uuid.UUID, prefix: str) -> None:
        self._hash = hashlib.sha1(namespace.bytes + prefix.encode(), usedforsecurity=False)

    def _digest(self, suffix: str) -> bytes:
        digest = self._hash.copy()
        digest.update(suffix.encode())
        return digest.digest()[:16]

    def __call__(self, suffix: str) -> uuid.UUID:
        return uuid.UUID(bytes=self._digest(suffix), version=5)

    def text(self, suffix: str) -> str:
        h = self._digest(suffix).hex()
        # The version (5) in the 13th hex digit, the RFC 4122 variant in the top bits of the 17th.
        return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
