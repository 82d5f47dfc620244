"""hypothesis-jsonschema's `from_schema`, on the Hypothesis this project pins.

hypothesis-jsonschema 0.23.1 (its latest release) builds objects with Hypothesis' private
`conjecture.utils.many(...).more()`, which Hypothesis has since replaced by an iterator
(`with many(...) as elements: for _ in elements:`). `_LegacyMany` gives it the old call on the
new object; only hypothesis-jsonschema's own reference is replaced, and `test_generation_works`
fails when either side changes again.
"""

from __future__ import annotations

import types
from typing import Any

import hypothesis_jsonschema._from_schema as _from_schema
from hypothesis.internal.conjecture import utils as cu
from hypothesis_jsonschema import from_schema


class _LegacyMany:
    def __init__(self, data: Any, min_size: int, max_size: int | float, average_size: int | float) -> None:
        self._many = cu.many(data, min_size=min_size, max_size=max_size, average_size=average_size)
        self._many.__enter__()
        self._elements = iter(self._many)

    def more(self) -> bool:
        try:
            next(self._elements)
        except StopIteration:
            self._many.__exit__(None)
            return False
        return True

    def reject(self, why: str | None = None) -> None:
        self._many.reject(why)


_from_schema.cu = types.SimpleNamespace(**{**vars(cu), "many": _LegacyMany})  # type: ignore[attr-defined,assignment]

__all__ = ["from_schema", "inlined"]


def inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every local `$ref` replaced by what it names (the models have no recursive
    types), without `$id`/`$defs`: hypothesis-jsonschema resolves references with jsonschema's
    retired RefResolver, which cannot resolve against a URN `$id`."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = walk(defs[node["$ref"].rsplit("/", 1)[-1]])
                rest = {k: walk(v) for k, v in node.items() if k != "$ref"}
                return {"allOf": [target, rest]} if rest else target
            return {k: walk(v) for k, v in node.items() if k not in ("$defs", "$id", "$schema")}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out: dict[str, Any] = walk(schema)
    return out
