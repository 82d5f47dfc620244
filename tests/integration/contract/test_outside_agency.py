"""An agency's own system joins the bus from the published contract alone (issue #18).

These tests play a hospital's and a police command centre's systems written with librdkafka
(confluent-kafka), as their engineers would from schemas/asyncapi.yaml and the JSON Schemas
beside it: topic names, keys, the partitioner and the message schemas all come from those
files, never from the Python catalog or models. An agency's system writes its events and answers
on its own two topics (`agency.{agency}.events`, `agency.{agency}.answers`), which only its
principal may write; the intake's gate admits them as the HTTP API admits the same JSON with the
agency's token (issue #17), and refuses the rest with a reason. It may also answer through the
intake with its token, as the intake's OpenAPI document (services/intake/openapi.json) says.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Consumer, Producer

from bus.local_broker import LocalBroker, free_port
from schemas.validation import validator

from ..conftest import Service, healthy, wait_for

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

    def kinds(self, operation: str) -> list[str]:
        """Every event kind the message's schema admits (its `kind` enum)."""
        ref = self.message(operation)["payload"]["schema"]["$ref"]
        schema = json.loads((self.path.parent / ref).read_text(encoding="utf-8"))
        found: set[str] = set()

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                kind = node.get("properties", {}).get("kind") if isinstance(node.get("properties"), dict) else None
                if isinstance(kind, dict):
                    found.update(v for v in kind.get("enum", []) if isinstance(v, str))
                    if isinstance(kind.get("const"), str):
                        found.add(kind["const"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(schema)
        return sorted(found)

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


SEND_EVENTS = "agency_send_agency_events"  # an agency's system writes its own events topic
SEND_ANSWERS = "agency_send_agency_answers"  # and its own answers topic
RECEIVE_REFUSALS = "agency_receive_agency_refusals"  # and reads why the gate refused any of them


def hospital_report(published: Published, event_id: uuid.UUID, case_id: uuid.UUID | None) -> dict[str, Any]:
    event = published.example(SEND_EVENTS, "medical_staff_suspects_trafficking")
    event.update(event_id=str(event_id), occurred_at=now_iso(-30), reported_at=now_iso(),
                 reporter={"agency": HOSPITAL, "role": "medical_staff"})
    event.pop("case_id", None)
    if case_id is not None:
        event["case_id"] = str(case_id)
    published.check(SEND_EVENTS, event)
    return event


def test_a_librdkafka_producer_following_the_document_puts_a_case_where_the_intake_does(
        broker: LocalBroker, spawn: Callable[..., Any], published: Published) -> None:
    port = free_port()
    intake = spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: healthy(url), 30, f"the intake\n{intake.log}")
    # The intake and any other producer of events.inbound (the operators' replay, in any client).
    topic = published.topic("operator_send_events_inbound")
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
        key = published.key("operator_send_events_inbound", event)
        assert key == str(case).encode()
        placed[str(case)] = produce(documented, topic, key, event)
        default_placed[str(case)] = produce(librdkafka_default, topic, key, event)
    assert placed == by_intake, "a case's events from the intake and from librdkafka must share a partition"
    moved = sum(default_placed[c] != p for c, p in by_intake.items())
    assert moved > 0, "librdkafka's default partitioner would have placed every case like the intake"



def every_kind(published: Published, agency: str, role: str) -> list[dict[str, Any]]:
    """One event of every kind the published schema admits, as `agency`'s system writes them: the
    document's example of the kind's own form where it has one, else its generic example."""
    events = []
    for kind in published.kinds(SEND_EVENTS):
        try:
            event = published.example(SEND_EVENTS, kind)
        except StopIteration:
            event = published.example(SEND_EVENTS, "medical_staff_suspects_trafficking")
            event["kind"] = kind
        event.update(event_id=str(uuid.uuid4()), occurred_at=now_iso(-40), reported_at=now_iso(),
                     reporter={"agency": agency, "role": role})
        if "last_seen_at" in event:
            event["last_seen_at"] = now_iso(-40)
        if "case_id" in event:
            event["case_id"] = str(uuid.uuid4())
        published.check(SEND_EVENTS, event)
        events.append(event)
    return events


def test_an_agency_publishes_every_kind_reads_its_referrals_and_alerts_and_answers_on_its_own_topics(
        broker: LocalBroker, spawn: Callable[..., Any], published: Published) -> None:
    spawn("router")
    spawn("alerts")
    intake = spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(free_port())})
    bootstrap = broker.bootstrap
    producer = published.producer_config(bootstrap)
    events_topic = published.topic(SEND_EVENTS, agency=COMMAND_CENTRE)
    assert events_topic == f"agency.{COMMAND_CENTRE}.events"

    # The command centre's system publishes every kind of event on its own topic, a parent's report
    # of a missing child among them (taken at the command centre: its reporter is the command centre).
    sent = every_kind(published, COMMAND_CENTRE, "police_officer")
    assert len(sent) >= 70 and {"child_missing_reported", "case_resolved", "missing_child_info_release"} <= {
        e["kind"] for e in sent}
    for event in sent:
        produce(producer, events_topic, published.key(SEND_EVENTS, event), event)
    report = next(e for e in sent if e["kind"] == "child_missing_reported")
    event_id = report["event_id"]

    # The gate admitted each one to events.inbound, as sent (read here as the router would).
    ids = {e["event_id"] for e in sent}
    inbound = consume(bootstrap, [published.topic("router_receive_events_inbound")],
                      lambda seen: ids <= {m["value"].get("event_id") for m in seen}, timeout=180)
    admitted = {m["value"]["event_id"]: m for m in inbound if m["value"].get("event_id") in ids}
    assert {i: m["value"] for i, m in admitted.items()} == {e["event_id"]: e for e in sent}
    assert all(m["key"] == published.key("router_receive_events_inbound", m["value"]) for m in admitted.values())

    # It reads its own referral topic and the police alerts.
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

    # It acknowledges the alert on its own answers topic.
    answers_topic = published.topic(SEND_ANSWERS, agency=COMMAND_CENTRE)
    answer = {"response_id": str(uuid.uuid4()), "referral_id": alert["value"]["alert_id"], "answer": "acknowledged",
              "agency": COMMAND_CENTRE, "officer": "desk 3", "responded_at": now_iso()}
    published.check(SEND_ANSWERS, answer)
    produce(producer, answers_topic, published.key(SEND_ANSWERS, answer), answer)

    # The alerts service applied it: its published state of the alert says so.
    states = published.topic("alerts_send_alerts_states")

    def acknowledged(seen: list[dict[str, Any]]) -> bool:
        return any(m["value"].get("id") == answer["referral_id"] and m["value"].get("status") == "acknowledged"
                   for m in seen)

    state = next(m["value"] for m in consume(bootstrap, [states], acknowledged, timeout=120)
                 if m["value"].get("id") == answer["referral_id"] and m["value"]["status"] == "acknowledged")
    published.check("alerts_send_alerts_states", state)
    assert any(h["what"] == "acknowledged" and h["officer"] == "desk 3" for h in state["history"])
    assert "gate_refused" not in intake.log, intake.log[-3000:]


def test_an_agency_that_writes_another_agencys_name_on_its_own_topic_is_told_why_and_nothing_is_routed(
        broker: LocalBroker, spawn: Callable[..., Any], published: Published) -> None:
    spawn("router")
    spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(free_port())})
    bootstrap = broker.bootstrap
    producer = published.producer_config(bootstrap)
    hospital_topic = published.topic(SEND_EVENTS, agency=HOSPITAL)

    # The hospital's system writes a report in the command centre's name, then one in its own.
    spoofed = hospital_report(published, uuid.uuid4(), None)
    spoofed["reporter"] = {"agency": COMMAND_CENTRE, "role": "police_officer"}
    published.check(SEND_EVENTS, spoofed)  # valid by the schema: only the topic says who wrote it
    own = hospital_report(published, uuid.uuid4(), None)
    for event in (spoofed, own):
        produce(producer, hospital_topic, published.key(SEND_EVENTS, event), event)

    letters = consume(bootstrap, [published.topic("operator_receive_events_deadletter")],
                      lambda seen: any(m["value"].get("event_id") == spoofed["event_id"] for m in seen))
    (letter,) = [m["value"] for m in letters if m["value"].get("event_id") == spoofed["event_id"]]
    published.check("operator_receive_events_deadletter", letter)
    assert (letter["reason"], letter["service"], letter["topic"]) == ("agency_mismatch", "intake", hospital_topic)
    assert letter["errors"] == [{"field": "reporter.agency", "reason": "not the authenticated agency"}]
    assert json.loads(base64.b64decode(letter["original_b64"])) == spoofed

    # The gate reads the topic in order: once the hospital's own report, written after the spoofed
    # one, is admitted and routed (its receipt), the spoofed one would have been too. It is
    # nowhere: not on events.inbound, so the router never saw it.
    inbound = published.topic("router_receive_events_inbound")
    receipts = published.topic("router_send_events_receipts")

    def routed(seen: list[dict[str, Any]]) -> bool:
        return {m["topic"] for m in seen if m["value"].get("event_id") == own["event_id"]} == {inbound, receipts}

    seen = consume(bootstrap, [inbound, receipts], routed, timeout=120)
    assert not any(m["value"].get("event_id") == spoofed["event_id"] for m in seen)

    # The hospital's system is told why on its own refusals topic (it cannot read the dead
    # letters): the reason and the failing field as the HTTP API would answer, its own event id,
    # and where the message was; and an answer it wrote that is not one, the same way.
    bad_answer = {"response_id": str(uuid.uuid4()), "referral_id": str(uuid.uuid4()), "answer": "ACK"}
    answers_topic = published.topic(SEND_ANSWERS, agency=HOSPITAL)
    produce(producer, answers_topic, str(bad_answer["referral_id"]).encode(), bad_answer)
    notices_topic = published.topic(RECEIVE_REFUSALS, agency=HOSPITAL)
    assert notices_topic == f"agency.{HOSPITAL}.refusals"
    centre_notices = published.topic(RECEIVE_REFUSALS, agency=COMMAND_CENTRE)

    def told(seen: list[dict[str, Any]]) -> bool:
        return any(m["value"].get("response_id") == bad_answer["response_id"] for m in seen)

    notices = consume(bootstrap, [notices_topic, centre_notices], told)
    assert {m["topic"] for m in notices} == {notices_topic}, "only the agency whose topic it was is told"
    event_notice = next(m for m in notices if m["value"].get("event_id") == spoofed["event_id"])
    answer_notice = next(m for m in notices if m["value"].get("response_id") == bad_answer["response_id"])
    for notice in (event_notice, answer_notice):
        published.check(RECEIVE_REFUSALS, notice["value"])
        value = notice["value"]
        assert notice["key"] == f"{value['topic']}:{value['partition']}:{value['offset']}".encode()
    assert {k: event_notice["value"][k] for k in ("message", "reason", "fields", "topic", "offset")} == {
        "message": "event", "reason": "agency_mismatch", "fields": letter["errors"], "topic": hospital_topic,
        "offset": letter["offset"]}
    assert {k: answer_notice["value"][k] for k in ("message", "reason", "referral_id", "topic")} == {
        "message": "answer", "reason": "invalid_answer", "referral_id": bad_answer["referral_id"],
        "topic": answers_topic}
    assert [f["field"] for f in answer_notice["value"]["fields"]] == ["answer"]
    assert "ACK" not in json.dumps(answer_notice["value"])


def test_an_intake_killed_mid_stream_loses_no_event_and_publishes_none_twice(
        broker: LocalBroker, spawn: Callable[..., Any], published: Published) -> None:
    bootstrap = broker.bootstrap
    intake: Service = spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(free_port())})
    producer = Producer(published.producer_config(bootstrap))
    topic = published.topic(SEND_EVENTS, agency=HOSPITAL)
    events = [hospital_report(published, uuid.uuid4(), uuid.uuid4() if n % 2 else None) for n in range(80)]
    inbound = published.topic("router_receive_events_inbound")
    ids = {e["event_id"] for e in events}

    def steady() -> None:  # 20 a second, as a hospital's system would send them
        for event in events:
            producer.produce(topic, json.dumps(event).encode(), published.key(SEND_EVENTS, event))
            producer.poll(0)
            time.sleep(0.05)
        producer.flush(30)

    writer = threading.Thread(target=steady)
    writer.start()
    # Killed (SIGKILL: no shutdown, no last commit) once the gate has admitted some of them.
    consume(bootstrap, [inbound], lambda seen: len({m["value"].get("event_id") for m in seen} & ids) >= 10,
            timeout=120)
    intake.kill()
    writer.join(60)
    intake.start()
    seen = consume(bootstrap, [inbound], lambda seen: ids <= {m["value"].get("event_id") for m in seen},
                   timeout=240)
    counts = Counter(m["value"]["event_id"] for m in seen if m["value"].get("event_id") in ids)
    assert set(counts) == ids, "an accepted event was lost"
    assert [i for i, n in counts.items() if n > 1] == [], "an event was published twice"
    assert intake.starts == 2
