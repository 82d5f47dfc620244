"""An agency's own system joins the bus from the published contract alone (issue #18).

These tests play a hospital's and a police command centre's systems written with librdkafka
(confluent-kafka), as their engineers would from schemas/asyncapi.yaml and the JSON Schemas
beside it: topic names, keys, the partitioner and the message schemas all come from those
files, never from the Python catalog or models. An agency answers through the intake with its
token, as the intake's OpenAPI document (services/intake/openapi.json) says: on Kafka, answers
are written by the bus's own intake and console only (issue #17).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Consumer, Producer

from bus.local_broker import LocalBroker, free_port
from schemas.validation import validator

from ..conftest import healthy, wait_for

pytestmark = pytest.mark.integration

CONTRACT = Path(__file__).parents[3] / "schemas" / "asyncapi.yaml"
OPENAPI = Path(__file__).parents[3] / "services" / "intake" / "openapi.json"
HOSPITAL_TOKEN = "rb_hospital_local-demo-only-hospital"  # docs/intake.md: the demo hospital's token
COMMAND_CENTRE_TOKEN = "rb_policecc_local-demo-only-policecc"  # docs/intake.md
HOSPITAL = "health.designated_medical_institution"
COMMAND_CENTRE = "police.command_center"


class Published:
    """What an outside engineer reads: the AsyncAPI document and the schemas it points to."""

    def __init__(self, path: Path = CONTRACT) -> None:
        self.path = path
        self.doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))

    def channel(self, operation: str) -> dict[str, Any]:
        ref = self.doc["operations"][operation]["channel"]["$ref"]
        channel: dict[str, Any] = self.doc["channels"][ref.rsplit("/", 1)[-1]]
        return channel

    def topic(self, operation: str, **parameters: str) -> str:
        channel = self.channel(operation)
        address: str = channel["address"]
        for name, spec in channel.get("parameters", {}).items():
            assert parameters[name] in spec["enum"], f"{parameters[name]} is not a {name} of {address}"
            address = address.replace("{" + name + "}", parameters[name])
        return address

    def message(self, operation: str) -> dict[str, Any]:
        (ref,) = self.channel(operation)["messages"].values()
        message: dict[str, Any] = self.doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
        return message

    def key(self, operation: str, value: dict[str, Any]) -> bytes:
        """The key the document says: the first of its fields the message has."""
        fields = self.channel(operation)["x-key"]["fields"]
        return str(next(value[f] for f in fields if value.get(f))).encode()

    def check(self, operation: str, value: dict[str, Any]) -> None:
        ref = self.message(operation)["payload"]["schema"]["$ref"]
        schema = json.loads((self.path.parent / ref).read_text(encoding="utf-8"))
        errors = [f"{e.json_path}: {e.message}" for e in validator(schema).iter_errors(value)]
        assert errors == [], (operation, errors)

    def example(self, operation: str, kind: str) -> dict[str, Any]:
        payload: dict[str, Any] = next(e["payload"] for e in self.message(operation)["examples"]
                                       if e["payload"].get("kind") == kind)
        fresh: dict[str, Any] = json.loads(json.dumps(payload))  # a copy the test may change
        return fresh

    def producer_config(self, bootstrap: str) -> dict[str, Any]:
        return {"bootstrap.servers": bootstrap, "acks": "all",
                **self.doc["info"]["x-partitioner"]["clients"]["librdkafka"]}


def now_iso(minutes: float = 0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat(timespec="milliseconds")


def produce(config: dict[str, Any], topic: str, key: bytes, value: dict[str, Any]) -> int:
    """Produce one message and return the partition the broker stored it on."""
    placed: list[int] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        placed.append(msg.partition())

    p = Producer(config)
    p.produce(topic, json.dumps(value, ensure_ascii=False).encode(), key, on_delivery=delivered)
    assert p.flush(30) == 0
    return placed[0]


def consume(bootstrap: str, topics: list[str], until: Callable[[list[dict[str, Any]]], bool],
            timeout: float = 90) -> list[dict[str, Any]]:
    """Read `topics` from the start (a consumer group of our own) until `until(messages)` holds."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"outside.{uuid.uuid4()}",
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50, "enable.auto.commit": False})
    c.subscribe(topics)
    seen: list[dict[str, Any]] = []
    deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
    try:
        while not until(seen):
            assert dt.datetime.now() < deadline, f"timed out on {topics}: {len(seen)} messages"
            msg = c.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            value = msg.value()
            if value is None:
                continue
            seen.append({"topic": msg.topic(), "partition": msg.partition(), "key": msg.key(),
                         "value": json.loads(value)})
    finally:
        c.close()
    return seen


@pytest.fixture
def published() -> Published:
    return Published()


def hospital_report(published: Published, event_id: uuid.UUID, case_id: uuid.UUID) -> dict[str, Any]:
    event = published.example("agency_send_events_inbound", "medical_staff_suspects_trafficking")
    event.update(event_id=str(event_id), case_id=str(case_id), occurred_at=now_iso(-30), reported_at=now_iso(),
                 reporter={"agency": HOSPITAL, "role": "medical_staff"})
    published.check("agency_send_events_inbound", event)
    return event


def test_a_librdkafka_producer_following_the_document_puts_a_case_where_the_intake_does(
        broker: LocalBroker, spawn: Callable[..., Any], published: Published) -> None:
    port = free_port()
    intake = spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: healthy(url), 30, f"the intake\n{intake.log}")
    topic = published.topic("agency_send_events_inbound")
    cases = [uuid.uuid5(uuid.NAMESPACE_URL, f"case-{n}") for n in range(24)]
    for n, case in enumerate(cases):
        event = hospital_report(published, uuid.uuid5(uuid.NAMESPACE_URL, f"intake-{n}"), case)
        answer = httpx.post(f"{url}/v1/events", json=event, timeout=10,
                            headers={"Authorization": f"Bearer {HOSPITAL_TOKEN}"})
        assert answer.status_code == 202, answer.text
    by_intake = {m["value"]["case_id"]: m["partition"] for m in
                 consume(broker.bootstrap, [topic], lambda seen: len(seen) >= len(cases))}
    documented = published.producer_config(broker.bootstrap)
    librdkafka_default = {k: v for k, v in documented.items() if k != "partitioner"}
    placed, default_placed = {}, {}
    for n, case in enumerate(cases):
        event = hospital_report(published, uuid.uuid5(uuid.NAMESPACE_URL, f"outside-{n}"), case)
        key = published.key("agency_send_events_inbound", event)
        assert key == str(case).encode()
        placed[str(case)] = produce(documented, topic, key, event)
        default_placed[str(case)] = produce(librdkafka_default, topic, key, event)
    assert placed == by_intake, "a case's events from the intake and from librdkafka must share a partition"
    moved = sum(default_placed[c] != p for c, p in by_intake.items())
    assert moved > 0, "librdkafka's default partitioner would have placed every case like the intake"


def test_an_agency_publishes_reads_its_referrals_and_alerts_and_answers(
        broker: LocalBroker, spawn: Callable[..., Any], published: Published) -> None:
    spawn("router")
    spawn("alerts")
    port = free_port()
    intake = spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(port)})
    bootstrap = broker.bootstrap
    producer = published.producer_config(bootstrap)

    # A parent's report of a missing child, as a police intake system publishes it.
    report = published.example("agency_send_events_inbound", "child_missing_reported")
    event_id = str(uuid.uuid4())
    report.update(event_id=event_id, occurred_at=now_iso(-40), reported_at=now_iso(), last_seen_at=now_iso(-40))
    report.pop("case_id", None)
    published.check("agency_send_events_inbound", report)
    produce(producer, published.topic("agency_send_events_inbound"),
            published.key("agency_send_events_inbound", report), report)

    # The command centre's system reads its own referral topic and the police alerts.
    referrals_topic = published.topic("agency_receive_referrals_agency", agency=COMMAND_CENTRE)
    alerts_topic = published.topic("agency_receive_alerts_police")

    def arrived(seen: list[dict[str, Any]]) -> bool:
        return {m["topic"] for m in seen if m["value"].get("event_id") == event_id} == {referrals_topic, alerts_topic}

    received = [m for m in consume(bootstrap, [referrals_topic, alerts_topic], arrived)
                if m["value"].get("event_id") == event_id]
    referral = next(m for m in received if m["topic"] == referrals_topic)
    alert = next(m for m in received if m["topic"] == alerts_topic)
    published.check("agency_receive_referrals_agency", referral["value"])
    published.check("agency_receive_alerts_police", alert["value"])
    assert referral["value"]["agency"] == COMMAND_CENTRE and referral["value"]["role"] == "lead"
    assert referral["key"] == published.key("agency_receive_referrals_agency", referral["value"])
    assert alert["key"] == published.key("agency_receive_alerts_police", alert["value"])

    # It acknowledges the alert through the intake, with its token, as the OpenAPI document says.
    # Kafka takes no answer from an agency's system: the document names no agency that writes there.
    assert not any(op.startswith("agency_send_answers") for op in published.doc["operations"])
    openapi = json.loads(OPENAPI.read_text(encoding="utf-8"))
    path = "/v1/referrals/{referral_id}/answers"
    body_schema = openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    answer = {"response_id": str(uuid.uuid4()), "answer": "acknowledged", "officer": "desk 3",
              "responded_at": now_iso()}
    assert list(validator({**body_schema, "components": openapi["components"]}).iter_errors(answer)) == []
    answer["referral_id"] = alert["value"]["alert_id"]
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: healthy(url), 30, f"the intake\n{intake.log}")

    def answered() -> bool:
        # 202 once the broker has it; 404 until the intake has read the alert's state.
        r = httpx.post(f"{url}{path.format(referral_id=answer['referral_id'])}", json=answer, timeout=10,
                       headers={"Authorization": f"Bearer {COMMAND_CENTRE_TOKEN}"})
        assert r.status_code in (202, 404), r.text
        return r.status_code == 202

    wait_for(answered, 60, f"the intake's answer endpoint\n{intake.log}", interval=0.5)

    # The alerts service applied it: its published state of the alert says so.
    states = published.topic("alerts_send_alerts_states")

    def acknowledged(seen: list[dict[str, Any]]) -> bool:
        return any(m["value"].get("id") == answer["referral_id"] and m["value"].get("status") == "acknowledged"
                   for m in seen)

    state = next(m["value"] for m in consume(bootstrap, [states], acknowledged)
                 if m["value"].get("id") == answer["referral_id"] and m["value"]["status"] == "acknowledged")
    published.check("alerts_send_alerts_states", state)
    assert any(h["what"] == "acknowledged" and h["officer"] == "desk 3" for h in state["history"])
