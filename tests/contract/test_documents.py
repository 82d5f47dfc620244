"""The published documents: complete, valid AsyncAPI 3.0, and never out of date with the code.

tests/contract/asyncapi-3.0.0.schema.json is the official AsyncAPI 3.0.0 JSON Schema, from the
AsyncAPI Initiative's spec-json-schemas (npm @asyncapi/specs 6.11.1, schemas/3.0.0.json),
Apache License 2.0, Copyright 2016-2025 AsyncAPI Initiative; vendored so that no test needs
the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from lxml import etree

from schemas.broadcast import CAP_XSD
from schemas.contract import JSON_DIR, published, render, schemas
from schemas.validation import validator
from schemas.wire import Message
from topics import asyncapi, reference
from topics.catalog import CAP_XML, FIXED_TOPICS, all_topics

HERE = Path(__file__).parent
ASYNCAPI_SCHEMA = HERE / "asyncapi-3.0.0.schema.json"
REGENERATE = "run `referral-bus contract export`"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi.document()


@pytest.mark.parametrize("name", sorted(schemas()))
def test_published_json_schemas_match_the_models(name: str) -> None:
    path = JSON_DIR / f"{name}.schema.json"
    assert path.exists(), f"{path} missing: {REGENERATE}"
    assert path.read_text(encoding="utf-8") == render(schemas()[name]), f"{path.name} drifted: {REGENERATE}"


def test_no_schema_file_is_left_from_a_model_that_is_gone() -> None:
    assert {p.name for p in JSON_DIR.glob("*.schema.json")} == {f"{n}.schema.json" for n in schemas()}


def test_the_asyncapi_document_and_the_topic_reference_match_the_code(document: dict[str, Any]) -> None:
    assert asyncapi.ASYNCAPI_PATH.read_text(encoding="utf-8") == asyncapi.render(document), (
        f"schemas/asyncapi.yaml drifted: {REGENERATE}")
    assert reference.REFERENCE_PATH.read_text(encoding="utf-8") == reference.render(document), (
        f"docs/topics.md drifted: {REGENERATE}")


def test_the_asyncapi_document_is_valid_asyncapi_3(document: dict[str, Any]) -> None:
    official = json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))
    checked = yaml.safe_load(asyncapi.ASYNCAPI_PATH.read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}"
              for e in jsonschema.Draft7Validator(official).iter_errors(checked)]
    assert errors == []
    broken = {**checked, "channels": {**checked["channels"], "x": {"address": 5}}}
    assert list(jsonschema.Draft7Validator(official).iter_errors(broken)), "the official schema must be applied"


def test_every_topic_of_the_catalog_is_a_channel(document: dict[str, Any]) -> None:
    names: set[str] = set()
    for channel in document["channels"].values():
        addresses = [channel["address"]]
        for parameter, spec in channel.get("parameters", {}).items():
            addresses = [a.replace("{" + parameter + "}", value) for a in addresses for value in spec["enum"]]
        names |= set(addresses)
    for topic in all_topics():
        assert topic.name in names, topic.name
    referrals = document["channels"]["referrals_agency"]
    assert "police.command_center" in referrals["parameters"]["agency"]["enum"]
    gate = document["channels"]["agency_events"]
    assert gate["address"] == "agency.{agency}.events" and gate["x-writers"] == ["agency"]
    assert "police.command_center" in gate["parameters"]["agency"]["enum"]


def test_every_message_on_every_topic_has_a_published_versioned_schema() -> None:
    pubs = published()
    for topic in all_topics():
        if topic.value == CAP_XML:
            continue  # CAP 1.2 XML: OASIS's XSD, version in its namespace
        pub = pubs[topic.value]
        assert pub.schema["$id"] == f"urn:referral-bus:schema:{pub.stem}:{pub.major}"
        assert "referral-bus.example" not in json.dumps(pub.schema)
        model = pub.model
        assert model is not None
        inner = model if issubclass(model, Message) else None
        if inner is not None:
            assert "schema_version" in inner.model_fields, f"{topic.value} carries no schema_version"


def test_every_channel_says_its_key_partitions_retention_and_who_writes_and_reads(document: dict[str, Any]) -> None:
    for channel_id, channel in document["channels"].items():
        kafka = channel["bindings"]["kafka"]
        assert kafka["partitions"] >= 1 and kafka["topicConfiguration"]["retention.ms"] > 0, channel_id
        assert channel["x-key"]["partitioner"] == "murmur2"
        assert channel["x-writers"] and channel["x-readers"]
        (message_ref,) = channel["messages"].values()
        name = message_ref["$ref"].rsplit("/", 1)[-1]
        assert document["components"]["messages"][name]["bindings"]["kafka"]["key"]["type"] == "string"
    operations = document["operations"]
    # An agency's own system writes its own gate topics, which the intake reads; never the bus's
    # inbound events or answers, where the agency is only a field (issue #18).
    assert operations["agency_send_agency_events"]["action"] == "send"
    assert operations["agency_send_agency_answers"]["action"] == "send"
    assert operations["intake_receive_agency_events"]["action"] == "receive"
    assert operations["intake_receive_agency_answers"]["action"] == "receive"
    assert "agency_send_events_inbound" not in operations
    assert operations["agency_receive_referrals_agency"]["action"] == "receive"
    # Answers are written on Kafka only by the bus's services that prove who answers (issue #17):
    # the intake (an agency's token) and the console (its officers signed in).
    assert {op for op in operations if op.endswith("_send_answers_referrals")} == {
        "intake_send_answers_referrals", "console_send_answers_referrals"}
    assert operations["alerts_send_answers_refused"]["action"] == "send"
    assert operations["intake_send_answers_refused"]["action"] == "send"
    assert operations["intake_send_events_deadletter"]["action"] == "send"
    assert operations["console_receive_answers_refused"]["action"] == "receive"
    assert operations["agency_receive_alerts_police"]["action"] == "receive"


def test_examples_in_the_document_follow_their_schemas(document: dict[str, Any]) -> None:
    pubs = published()
    for name, message in document["components"]["messages"].items():
        assert message["examples"], name
        if name == CAP_XML:
            xsd = etree.XMLSchema(etree.parse(str(CAP_XSD)))
            for example in message["examples"]:
                xsd.assertValid(etree.fromstring(example["payload"].encode()))
            continue
        check = validator(pubs[name].schema)
        for example in message["examples"]:
            assert list(check.iter_errors(example["payload"])) == [], (name, example["name"])


def test_the_event_examples_cover_every_kind_with_fields_of_its_own(document: dict[str, Any]) -> None:
    kinds = {e["payload"]["kind"] for e in document["components"]["messages"]["Event"]["examples"]}
    assert set(published()["Event"].kinds) <= kinds


def test_the_changelogs_of_the_alerts_service_are_in_the_document(document: dict[str, Any]) -> None:
    addresses = {c["address"] for c in document["channels"].values()}
    assert {t.name for t in FIXED_TOPICS} <= addresses
    assert "alerts.states" in addresses and "alerts.parked" in addresses
