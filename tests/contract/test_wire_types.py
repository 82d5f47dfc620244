"""Every field of every published message is built from the wire types (schemas/wire.py).

A field added later as a plain `str`, `int`, `uuid.UUID` or `datetime` would make the model
accept what its schema refuses ("6" for 6, an id in capitals, a Unix time): this test names it
before the parity tests have to stumble on it.
"""

from __future__ import annotations

from typing import Any

import pytest

from schemas.contract import published
from schemas.wire import DATE_TIME_PATTERN, UUID_PATTERN

SCALARS = {"str", "int", "float", "bool"}


def _lax_scalars(node: Any, path: str = "") -> list[str]:
    """Paths of str/int/float/bool core schemas that are not strict."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") in SCALARS and not node.get("strict"):
            found.append(f"{path} ({node['type']})")
        for key, value in node.items():
            # JSON object keys are strings whatever the type says.
            if key not in ("metadata", "serialization", "ref", "keys_schema"):
                found += _lax_scalars(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _lax_scalars(value, f"{path}/{i}")
    return found


def _loose_formats(node: Any, path: str = "") -> list[str]:
    """JSON Schema nodes with format uuid/date-time but not the wire pattern."""
    found: list[str] = []
    if isinstance(node, dict):
        expected = {"uuid": UUID_PATTERN, "date-time": DATE_TIME_PATTERN}.get(node.get("format", ""))
        if expected is not None and node.get("pattern") != expected:
            found.append(path)
        for key, value in node.items():
            found += _loose_formats(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _loose_formats(value, f"{path}/{i}")
    return found


@pytest.mark.parametrize("name", sorted(published()))
def test_every_scalar_is_strict_and_every_id_and_time_has_one_form(name: str) -> None:
    pub = published()[name]
    assert pub.model is not None
    models = [pub.model, *(c for c in pub.model.__subclasses__())]
    for model in models:
        assert _lax_scalars(model.__pydantic_core_schema__) == [], f"{model.__name__}: use schemas.wire types"
    assert _loose_formats(pub.schema) == [], f"{name}: use schemas.wire.Uuid / Timestamp"
