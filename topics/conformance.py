"""The conformance kit: check messages against the published contract, offline.

It reads only the published documents (schemas/asyncapi.yaml and the JSON Schemas beside it, or
a copy of them given with `--contract`), as an outside system would: the topic's channel names
the message and its schema; the schema is applied with formats asserted; the rules the schema
cannot state, named in the document, are checked by name.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from schemas import validation
from schemas.contract import JSON_DIR

CONTRACT_DIR = JSON_DIR.parent  # schemas/: asyncapi.yaml, json/, cap-1.2.xsd


class ContractError(Exception):
    """The contract cannot answer: an unknown topic, a missing document."""


def _instant(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")) if isinstance(text, str) else None
    except ValueError:
        return None


def _reported_after_occurred(message: Any) -> list[tuple[str, str]]:
    if not isinstance(message, dict):
        return []
    occurred, reported = _instant(message.get("occurred_at")), _instant(message.get("reported_at"))
    if occurred and reported and occurred.tzinfo and reported.tzinfo and reported < occurred:
        return [("(event)", "reported_at is earlier than occurred_at")]
    return []


#: The named rules this kit checks beyond the schema (formats cover `real_dates`).
RULE_CHECKS: dict[str, Callable[[Any], list[tuple[str, str]]]] = {
    "reported_after_occurred": _reported_after_occurred,
    "real_dates": lambda _message: [],
}


@dataclass(frozen=True)
class Checked:
    """One message's verdict: where it was in the input, and each failing field with its reason."""

    position: int
    errors: tuple[tuple[str, str], ...]

    @property
    def ok(self) -> bool:
        return not self.errors


class Contract:
    """The published documents of one directory."""

    def __init__(self, directory: Path = CONTRACT_DIR) -> None:
        path = directory / "asyncapi.yaml"
        if not path.exists():
            raise ContractError(f"no AsyncAPI document at {path}")
        self.directory = directory
        self.document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))

    def channel_for(self, topic: str) -> dict[str, Any]:
        """The channel whose address is `topic`, or whose address template and parameters admit it."""
        for channel in self.document["channels"].values():
            address: str = channel["address"]
            params: dict[str, Any] = channel.get("parameters", {})
            pattern = "^" + re.escape(address) + "$"
            for name in params:
                pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>.+)")
            match = re.match(pattern, topic)
            if match and all(match[n] in params[n].get("enum", [match[n]]) for n in params):
                found: dict[str, Any] = channel
                return found
        raise ContractError(f"no topic {topic!r} in the contract (see `referral-bus topics list`)")

    def message_for(self, topic: str) -> dict[str, Any]:
        channel = self.channel_for(topic)
        (ref,) = channel["messages"].values()
        name = ref["$ref"].rsplit("/", 1)[-1]
        message: dict[str, Any] = self.document["components"]["messages"][name]
        return message

    def schema_for(self, topic: str) -> dict[str, Any]:
        payload = self.message_for(topic)["payload"]
        if "schema" not in payload:
            raise ContractError(f"{topic}: its messages are not JSON ({payload.get('contentMediaType')})")
        schema: dict[str, Any] = json.loads((self.directory / payload["schema"]["$ref"]).read_text(encoding="utf-8"))
        return schema

    def checker(self, topic: str) -> Callable[[Any], list[tuple[str, str]]]:
        """A function from one decoded message to its errors (empty: it conforms)."""
        schema_validator = validation.validator(self.schema_for(topic))
        rules = [RULE_CHECKS[name] for name in self.message_for(topic).get("x-rules", {}) if name in RULE_CHECKS]

        def check(message: Any) -> list[tuple[str, str]]:
            found = validation.errors(schema_validator, message)
            for rule in rules:
                found += rule(message)
            return found

        return check

    def unchecked_rules(self, topic: str) -> list[str]:
        return [n for n in self.message_for(topic).get("x-rules", {}) if n not in RULE_CHECKS]


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def split_messages(text: str) -> list[tuple[int, str | None, Any]]:
    """`(position, error, message)` per message: a JSON array, or JSON lines (one object a line).
    A position is the array index (from 0) or the line number (from 1)."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = _strict_json(stripped)
        except ValueError as exc:
            return [(0, f"not valid JSON ({type(exc).__name__})", None)]
        return [(i, None, item) for i, item in enumerate(items)]
    out: list[tuple[int, str | None, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((number, None, _strict_json(line)))
        except ValueError:
            out.append((number, "not valid JSON", None))
    return out


def check_xml(contract: Contract, topic: str, text: str) -> list[Checked]:
    """A topic whose value is an XML document (the CAP channels): the whole input is one message,
    checked against the XSD the document names."""
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(contract.directory / contract.message_for(topic)["x-xml-schema"])))
    try:
        document = etree.fromstring(text.encode(), parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return [Checked(1, (("(message)", "not well-formed XML"),))]
    if schema.validate(document):
        return [Checked(1, ())]
    # The element and the XSD rule it breaks (lxml's messages would repeat the value).
    return [Checked(1, tuple(sorted({(_element(e.message, e.line), e.type_name.lower()) for e in schema.error_log})))]


def _element(message: str, line: int) -> str:
    named = re.search(r"Element '(?:\{[^}]*\})?([^']+)'", message)
    return f"{named[1] if named else '(document)'} (line {line})"


def check_text(contract: Contract, topic: str, text: str) -> list[Checked]:
    if "x-xml-schema" in contract.message_for(topic):
        return check_xml(contract, topic, text)
    check = contract.checker(topic)
    return [Checked(position, ((("(message)", error),) if error else tuple(check(message))))
            for position, error, message in split_messages(text)]
