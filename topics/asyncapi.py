"""The bus's AsyncAPI 3.0 document, generated from the topic catalog and the message models.

Every channel (a topic, or a family of topics such as `referrals.{agency}`), its message with
the JSON Schema it follows (a `$ref` to the file under schemas/json/), its key and partitioner,
partitions, retention and cleanup, who writes and who reads it (one operation each), and
examples. An outside system's engineer needs this file, the schemas beside it and
docs/wire-format.md — not the Python code. Its `info.version` is the last entry of the
contract's recorded history (topics/contract_history.py), which a test holds to the contract.

`referral-bus contract export` writes it to schemas/asyncapi.yaml; a test fails when the file
drifts from the code and when it is not valid AsyncAPI 3.0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from rules.catalog import catalog
from schemas.broadcast import CAP_CONTENT_TYPE, CAP_XSD
from schemas.contract import DIALECT, JSON_CONTENT_TYPE, JSON_DIR, Published, published, schemas
from schemas.wire import UUID_PATTERN
from topics import contract_history
from topics.catalog import (
    BROADCAST_CHANNELS,
    CAP_XML,
    FIXED_TOPICS,
    KEY_FIELDS,
    KEYS,
    PARTICIPANTS,
    PARTITIONER,
    TopicSpec,
    broadcast_topic,
    current_agencies,
    gate_topics,
    referral_topic,
    refusals_topic,
)
from topics.examples import examples

ASYNCAPI_PATH = JSON_DIR.parent / "asyncapi.yaml"
SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
KAFKA_BINDING = "0.5.0"
CAP_HEADERS = {
    "type": "object",
    "required": ["content-type", "cap-identifier", "cap-msg-type", "cap-status"],
    "properties": {
        "content-type": {"const": CAP_CONTENT_TYPE},
        "cap-identifier": {"type": "string", "description": "The CAP <identifier> of this message."},
        "cap-msg-type": {"enum": ["Alert", "Update", "Cancel"], "description": "The CAP <msgType>."},
        "cap-status": {"enum": ["Actual", "Exercise"], "description": "The CAP <status>: drills are Exercise."},
    },
}
CAP_EXAMPLE = """<?xml version='1.0' encoding='UTF-8'?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>referral-bus.xian.2026-0001</identifier>
  <sender>police.command_center@xian.referral-bus</sender>
  <sent>2026-11-20T08:12:00+08:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>zh-CN</language>
    <category>Rescue</category>
    <event>儿童失踪</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Observed</certainty>
    <expires>2026-11-21T08:12:00+08:00</expires>
    <senderName>西安市公安局指挥中心</senderName>
    <headline>寻找6岁男孩</headline>
    <contact>110</contact>
    <area>
      <areaDesc>西安市雁塔区大雁塔北广场 周边 10 公里</areaDesc>
      <circle>34.22,108.96 10</circle>
    </area>
  </info>
</alert>
"""


def _channel_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name)


def _key_schema(rule: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "description": f"UTF-8 text, no quotes: {KEYS[rule]}."}  # type: ignore[index]
    if rule not in ("event_id_else_position", "answered_id", "refused_position"):  # a refused message's key
        # may be no UUID
        schema["pattern"] = UUID_PATTERN
    return schema


def _kafka_channel(spec: TopicSpec) -> dict[str, Any]:
    cleanup = [spec.cleanup]
    return {"kafka": {"partitions": spec.partitions,
                      "topicConfiguration": {"cleanup.policy": cleanup, "retention.ms": spec.retention_ms},
                      "bindingVersion": KAFKA_BINDING}}


def _extensions(spec: TopicSpec) -> dict[str, Any]:
    return {
        "x-key": {"rule": spec.key, "fields": list(KEY_FIELDS[spec.key]), "description": KEYS[spec.key],
                  "partitioner": "murmur2"},
        "x-writers": list(spec.writers),
        "x-readers": list(spec.readers),
        "x-compacted": spec.cleanup == "compact",
    }


def _describe_topic(spec: TopicSpec, extra: str = "") -> str:
    retention = spec.retention_ms // 86_400_000
    lines = [spec.description + extra, "",
             f"Key: {KEYS[spec.key]}. Partitioner: murmur2 (see info.x-partitioner).",
             f"Partitions: {spec.partitions} as `referral-bus topics create` makes it (a deployment may have more: "
             "a client takes the count from the broker's metadata); "
             f"retention {retention} days; cleanup.policy={spec.cleanup}."]
    if spec.cleanup == "compact":
        lines.append("Compacted: the last message per key is the current value; a null value (tombstone) "
                     "deletes the key.")
    lines.append("Writers: " + ", ".join(spec.writers) + ". Readers: " + ", ".join(spec.readers) + ".")
    return "\n".join(lines)


def _message(spec_key: str, pub: Published) -> dict[str, Any]:
    text = (pub.schema.get("description") or "").split("\n\n")[0]
    message: dict[str, Any] = {
        "name": pub.name,
        "title": pub.name,
        "summary": text,
        "contentType": JSON_CONTENT_TYPE,
        "payload": {"schemaFormat": SCHEMA_FORMAT, "schema": {"$ref": f"json/{pub.file_name}"}},
        "bindings": {"kafka": {"key": _key_schema(spec_key), "bindingVersion": KAFKA_BINDING}},
        "x-schema-version": pub.version,
        "x-schema-id": pub.schema["$id"],
        "examples": [{"name": re.sub(r"[^A-Za-z0-9]+", "_", summary).strip("_")[:60], "summary": summary,
                      "payload": value} for summary, value in examples().get(pub.name, [])],
    }
    if pub.rules:
        message["x-rules"] = dict(pub.rules)
    if pub.kinds:
        message["x-kinds-with-fields-of-their-own"] = list(pub.kinds)
    return message


def _cap_message(spec_key: str) -> dict[str, Any]:
    return {
        "name": CAP_XML,
        "title": "CAP 1.2 alert (XML)",
        "summary": "A missing-child broadcast: an OASIS CAP 1.2 <alert> (Alert, Update or Cancel), UTF-8 XML.",
        "description": "The value is the XML document itself, valid against the OASIS CAP 1.2 XSD "
                       f"({CAP_XSD.name}, beside this document); its version is its namespace, "
                       "urn:oasis:names:tc:emergency:cap:1.2. Headers say what it is without parsing it.",
        "contentType": CAP_CONTENT_TYPE,
        "headers": CAP_HEADERS,
        "payload": {"type": "string", "contentMediaType": CAP_CONTENT_TYPE},
        "bindings": {"kafka": {"key": _key_schema(spec_key), "bindingVersion": KAFKA_BINDING}},
        "externalDocs": {"description": "OASIS Common Alerting Protocol 1.2",
                         "url": "https://docs.oasis-open.org/emergency/cap/v1.2/CAP-v1.2.html"},
        "x-schema-version": "CAP 1.2",
        "x-xml-schema": CAP_XSD.name,
        "examples": [{"name": "alert", "summary": "the first Alert of a case",
                      "headers": {"content-type": CAP_CONTENT_TYPE, "cap-identifier": "referral-bus.xian.2026-0001",
                                  "cap-msg-type": "Alert", "cap-status": "Actual"},
                      "payload": CAP_EXAMPLE}],
    }


def _channels() -> Iterable[tuple[str, TopicSpec, dict[str, Any]]]:
    """(channel id, a representative spec, the channel object)."""
    for spec in FIXED_TOPICS:
        yield _channel_id(spec.name), spec, {
            "address": spec.name, "title": spec.name, "description": _describe_topic(spec),
            "bindings": _kafka_channel(spec), **_extensions(spec)}
    agencies = sorted(code for code, a in catalog().agencies.items() if not a.abolished)
    spec = referral_topic(agencies[0])
    yield "referrals_agency", spec, {
        "address": "referrals.{agency}", "title": "referrals.{agency}",
        "description": _describe_topic(spec, " One topic per agency: an agency reads its own, and nothing else."),
        "parameters": {"agency": {"description": "The agency's code (rules/catalog/agencies.yaml); dots of "
                                                 "sub-units are kept (referrals.police.command_center).",
                                  "enum": agencies, "location": "$message.payload#/agency"}},
        "bindings": _kafka_channel(spec), **_extensions(spec)}
    events, answers = gate_topics(agencies[0])
    gate_parameter = {"description": "The agency's code (rules/catalog/agencies.yaml), dots of sub-units kept. "
                                     "Only the agency's own principal User:agency.<code> writes its topics: the "
                                     "topic, not a field, says who wrote a message.",
                      "enum": current_agencies()}
    gate = (" One topic per agency, written only by its principal User:agency.<code>. The intake's gate admits "
            "each message exactly as the intake's HTTP API admits the same JSON with the agency's token, and "
            "publishes it as the intake does")
    yield "agency_events", events, {
        "address": "agency.{agency}.events", "title": "agency.{agency}.events",
        "description": _describe_topic(events, gate + " (to events.inbound). Refused: a dead letter on "
                                       "events.deadletter with its reason (agency_mismatch: reporter.agency is "
                                       "not the topic's agency; kind_not_permitted; event_id_conflict: another "
                                       "agency's event id, or the same id for another body; or the trust "
                                       "boundary's reasons), and a RefusalNotice on agency.{agency}.refusals."),
        "parameters": {"agency": {**gate_parameter, "location": "$message.payload#/reporter/agency"}},
        "bindings": _kafka_channel(events), **_extensions(events)}
    yield "agency_answers", answers, {
        "address": "agency.{agency}.answers", "title": "agency.{agency}.answers",
        "description": _describe_topic(answers, gate + " (to answers.referrals). Refused: a RefusedAnswer on "
                                       "answers.refused with its reason (agency_mismatch: agency is not the "
                                       "topic's agency; unknown_id; not_entitled; already_final; no_effect; "
                                       "response_id_conflict; or the trust boundary's reasons), and a "
                                       "RefusalNotice on agency.{agency}.refusals."),
        "parameters": {"agency": {**gate_parameter, "location": "$message.payload#/agency"}},
        "bindings": _kafka_channel(answers), **_extensions(answers)}
    refusals = refusals_topic(agencies[0])
    yield "agency_refusals", refusals, {
        "address": "agency.{agency}.refusals", "title": "agency.{agency}.refusals",
        "description": _describe_topic(refusals, " One topic per agency, read only by its principal "
                                       "User:agency.<code>: a RefusalNotice for each message of its own two topics "
                                       "above that the gate refused, with the reason and the failing fields the "
                                       "intake's HTTP API would answer for the same JSON, and for each of its "
                                       "answers, however given, that the alerts service refused when it came to "
                                       "apply it (already_final, no_effect, ...: another desk was first). The bus's "
                                       "own records (events.deadletter, answers.refused) are on shared topics no "
                                       "agency reads."),
        "parameters": {"agency": dict(gate_parameter)},
        "bindings": _kafka_channel(refusals), **_extensions(refusals)}
    spec = broadcast_topic(BROADCAST_CHANNELS[0])
    yield "broadcast_channel", spec, {
        "address": "broadcast.{channel}", "title": "broadcast.{channel}",
        "description": _describe_topic(spec, " One topic per kind of broadcast channel."),
        "parameters": {"channel": {"description": "The kind of channel.", "enum": list(BROADCAST_CHANNELS)}},
        "bindings": _kafka_channel(spec), **_extensions(spec)}


_VERBS = {"send": "writes", "receive": "reads"}


def document(history: contract_history.ContractHistory | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the whole bus, its version the last of the contract's history
    (schemas/contract-history.yaml unless another is given)."""
    doc = unversioned()
    if history is None:
        history = contract_history.load()
    info = doc["info"]
    doc["info"] = {"title": info.pop("title"), "version": history.current.version, **info,
                   "x-changes": contract_history.changes(history)}
    return doc


def unversioned() -> dict[str, Any]:
    """The document without what it takes from the contract's history (what the digest covers)."""
    pubs = published()
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel_id, spec, channel in _channels():
        if spec.value == CAP_XML:
            message = _cap_message(spec.key)
        else:
            if spec.value not in pubs:
                raise KeyError(f"topic {spec.name}: no published schema for {spec.value!r}")
            message = _message(spec.key, pubs[spec.value])
        known = messages.setdefault(spec.value, message)
        if known != message:
            raise ValueError(f"{spec.value} is published with two different keys or forms")
        channel["messages"] = {spec.value: {"$ref": f"#/components/messages/{spec.value}"}}
        channels[channel_id] = channel
        for action, who in (("send", spec.writers), ("receive", spec.readers)):
            for participant in who:
                operations[f"{participant}_{action}_{channel_id}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{channel_id}"},
                    "title": f"{participant} {_VERBS[action]} {channel['address']}",
                    "summary": PARTICIPANTS[participant],
                    "messages": [{"$ref": f"#/channels/{channel_id}/messages/{spec.value}"}],
                    "tags": [{"name": participant}],
                }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:referral-bus",
        "info": {
            "title": "referral-bus",
            "description": (
                "The Kafka contract of the referral and alert bus for anti-trafficking work: every topic, "
                "its messages and their JSON Schemas, keys, partitioning, retention, and who writes and "
                "reads it. Messages are UTF-8 JSON (broadcast channels: CAP 1.2 XML) with no headers "
                "required; each JSON message carries `schema_version` (MAJOR.MINOR, absent = 1.0) and a "
                "reader refuses a major version it does not know. `info.version` is the version of the whole "
                "contract (" + "; ".join(f"{part}: {when}" for part, when in contract_history.MOVES.items())
                + "), and `info.x-changes` says what each version changed. Read docs/wire-format.md first."),
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
            "x-partitioner": {
                "algorithm": "murmur2 of the key's UTF-8 bytes, & 0x7fffffff, modulo the partition count "
                             "(Kafka's Java default)",
                "clients": PARTITIONER},
            "x-participants": dict(PARTICIPANTS),
            "x-schema-dialect": DIALECT,
        },
        "defaultContentType": JSON_CONTENT_TYPE,
        "servers": {
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka",
                      "description": "`referral-bus broker`: the embedded Tansu broker, every topic created."},
            "compose": {"host": "kafka:9092", "protocol": "kafka",
                        "description": "The Compose file's Kafka (KRaft, PLAINTEXT, auto-creation off)."},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def digest() -> str:
    """The digest of the contract as the code generates it now (topics/contract_history.py)."""
    return contract_history.digest(unversioned(), {f"{stem}.schema.json": s for stem, s in schemas().items()})


def render(doc: dict[str, Any]) -> str:
    header = ("# Generated by `referral-bus contract export` from topics/catalog.py and the models in\n"
              "# schemas/: do not edit. The JSON Schemas it refers to are in json/ beside it.\n")
    return header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)


def export(path: Path = ASYNCAPI_PATH) -> Path:
    path.write_text(render(document()), encoding="utf-8")
    return path
