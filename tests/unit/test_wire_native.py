"""The wire types read from JSON by pydantic-core alone (schemas/wire.py `_from_json`) accept and
refuse exactly what their Python validators do, with the same value, error type and message."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas.wire import DATE_TIME_PATTERN, UUID_PATTERN, Timestamp, Uuid

U = "6f1c2a4e-8d2b-4c4e-9f61-0c1d2e3f4a5b"
UUIDS: list[Any] = [
    U, U.upper(), "{" + U + "}", "urn:uuid:" + U, U.replace("-", ""), U + "\n", " " + U, U[:-1] + "g", U[:-1],
    U + "0", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "", "x", 6, 6.0, None,
    True, [], {}, [U], {"u": U}, str(uuid.UUID(int=1, version=4)), U.replace("4c4e", "4C4e"),
]
TIMES: list[Any] = [
    "2026-12-06T09:51:19Z", "2026-12-06T09:51:19+08:00", "2026-12-06t09:51:19z", "2026-12-06 09:51:19Z",
    "2026-12-06T09:51:19", "2026-02-30T09:51:19Z", "2026-12-06T24:00:00Z", "2026-12-06T09:51:19.1234567Z",
    "2026-12-06T09:51:19.1234567890Z", "2026-12-06T09:51:19.123456789+01:00", "2026-12-06T09:51:19+24:00",
    "2026-12-06T09:51:60Z", "0001-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+01:00", "2026-12-06T09:51:19+08:00\n", "2026-12-06", "2026-12-06T09:51Z",
    "2026-12-06T09:51:19.Z", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2026-12-06T09:51:19-00:00",
    "2026-12-06T09:51:19+0800", "2026-04-31T00:00:00Z", "", 1765000000, 1.5, None, True, [], {},
]

# The same types with their Python validators only (what every message was read with before).
_PY_UUID = TypeAdapter(Uuid)
_PY_TIME = TypeAdapter(Timestamp)


def outcome(adapter: TypeAdapter[Any], value: Any, *, json_input: bool) -> Any:
    try:
        if json_input:
            return ("ok", adapter.validate_json(json.dumps(value)))
        return ("ok", adapter.validate_python(value))
    except ValidationError as exc:
        return ("refused", [(e["type"], e["loc"], e["msg"]) for e in exc.errors(include_url=False)])


def same(adapter: TypeAdapter[Any], value: Any) -> None:
    native = outcome(adapter, value, json_input=True)
    python = outcome(adapter, value, json_input=False)
    assert native == python, value
    if native[0] == "ok":
        # Serialised alike too (what the router writes).
        assert adapter.dump_json(native[1]) == adapter.dump_json(python[1])


def test_the_json_path_is_pydantic_cores_own() -> None:
    """What this file compares: JSON input does not go through the Python validators."""
    for adapter in (_PY_UUID, _PY_TIME):
        assert adapter.core_schema["type"] == "json-or-python"
        assert "function" not in repr(adapter.core_schema["json_schema"])


@pytest.mark.parametrize("value", UUIDS, ids=repr)
def test_a_uuid_from_json_is_read_as_the_python_validator_reads_it(value: Any) -> None:
    same(_PY_UUID, value)


@pytest.mark.parametrize("value", TIMES, ids=repr)
def test_a_date_time_from_json_is_read_as_the_python_validator_reads_it(value: Any) -> None:
    same(_PY_TIME, value)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.from_regex(UUID_PATTERN.replace("$", r"\Z"), fullmatch=False), st.uuids().map(str),
                 st.uuids().map(lambda u: str(u).upper()), st.text(alphabet="0123456789abcdefABCDEF-{}\n ",
                                                                    max_size=40)))
def test_any_uuid_like_text_is_read_alike(value: str) -> None:
    same(_PY_UUID, value)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.from_regex(DATE_TIME_PATTERN.replace("$", r"\Z"), fullmatch=False),
                 st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
                 st.text(alphabet="0123456789-:T.Z+ tz", max_size=40)))
def test_any_date_time_like_text_is_read_alike(value: str) -> None:
    same(_PY_TIME, value)
