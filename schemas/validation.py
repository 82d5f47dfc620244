"""Validating JSON against the published schemas as the bus reads them.

Two settings make a generic JSON Schema validator agree with the models: formats are asserted
(`date-time` must be a real date, `uuid` a UUID), and a pattern's `$` means the end of the text
as in ECMA-262 (Python's `re` also lets it match before a final newline). Errors name the field
and the rule, never the value (it may be a victim's personal data).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.validators import extend

from schemas.wire import python_regex


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and python_regex(pattern).search(instance) is None:
        yield ValidationError(f"does not match the pattern {json.dumps(pattern)}")


#: Draft 2020-12 with ECMA-262 `$` in patterns.
BusValidator = extend(Draft202012Validator, validators={"pattern": _pattern})


def validator(schema: dict[str, Any]) -> Any:
    """A validator of `schema` that asserts formats, as the bus does."""
    return BusValidator(schema, format_checker=FormatChecker())


def _field(error: ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(message)"


def _reason(error: ValidationError) -> str:
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "required" and isinstance(instance, dict):
        missing = [f for f in value if f not in instance]
        return "missing: " + ", ".join(missing)
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = set(error.schema.get("properties", {}))
        return "not a field of this message: " + ", ".join(sorted(k for k in instance if k not in known))
    if kind is None or kind == "not" or error.schema is False:
        return "not allowed for this kind"
    reasons = {
        "type": lambda: f"must be of JSON type {value}",
        "enum": lambda: "not one of the allowed values" + (f" ({', '.join(map(str, value))})" if len(value) <= 8 else
                                                           f" (one of {len(value)} codes)"),
        "const": lambda: f"must be {json.dumps(value, ensure_ascii=False)}",
        "format": lambda: f"not a valid {value}",
        "minimum": lambda: f"must be >= {value}", "maximum": lambda: f"must be <= {value}",
        "minLength": lambda: f"must have at least {value} characters",
        "maxLength": lambda: f"must have at most {value} characters",
        "minItems": lambda: f"must have at least {value} items", "maxItems": lambda: f"must have at most {value} items",
        "pattern": lambda: f"does not match the pattern {json.dumps(value)}",
    }
    return reasons.get(str(kind), lambda: f"fails {kind}")()


def errors(schema_validator: Any, instance: Any) -> list[tuple[str, str]]:
    """`[(field, reason)]` for every leaf failure, sorted; empty when `instance` is valid."""
    out: set[tuple[str, str]] = set()

    def leaves(errs: Any) -> None:
        for e in errs:
            if e.context:
                leaves(e.context)
            else:
                out.add((_field(e), _reason(e)))

    leaves(schema_validator.iter_errors(instance))
    # Of `X or null`, the null branch's complaint says nothing when X's says why.
    return sorted(e for e in out if e[1] != "must be of JSON type null"
                  or not any(o[0] == e[0] or o[0].startswith(e[0] + ".") for o in out if o != e))
