"""The ACL plan (deploy/acl.yaml) against what each role's code reads and writes.

The access story (deploy/README.md): an agency's own system joins through the intake, over HTTP
with its token or over Kafka on its own two gate topics (`agency.<code>.events|answers`), which
only its principal writes and the intake's gate admits. So the plan must give each service and
tool exactly the topics its code uses, give no agency principal a way to write `events.inbound`,
`answers.referrals` or another agency's gate topics, and give each agency (its desk tools, its own
system) its own referrals only, and police units and the joint office their alerts.

Writes of the router and the intake are observed, not listed: the router's step is run on the
demo's events (and a refused one) and the intake publishes through a recording publisher.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from bus.demo_events import INVALID_EVENT, scripted_events
from bus.settings import KafkaSettings, StateSettings
from rules.catalog import catalog
from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from services.intake.acl import AclPlan, Binding, expand, load_plan
from services.intake.app import create_app
from services.intake.gate import Gate
from services.intake.settings import IntakeSettings
from services.intake.store import Duty, IntakeStore
from services.router.handling import Position, Router
from services.router.outputs import emitters
from tests.unit.intake.intake_fakes import HOSPITAL, FakePublisher, auth, body, hospital_event
from topics import catalog as topics
from topics.catalog import all_topics, gate_topics, referral_topic_name, refusals_topic_name

REFERRALS = "referrals.*"  # stands for every current agency's referral topic
GATES = "agency.*.events|answers"  # stands for every current agency's two gate topics
NOTICES = "agency.*.refusals"  # stands for every current agency's refusals topic
CHANNELS = "broadcast.<channel>"


def agencies() -> list[str]:
    return sorted(code for code, a in catalog().agencies.items() if not a.abolished)


def police_units() -> list[str]:
    return [a for a in agencies() if a == "police" or a.startswith("police.")]


#: What each role's code reads and writes (the file that does it is named). A change to a
#: service that reads or writes another topic must change this table and the plan together.
NEEDS: dict[str, dict[str, set[str]]] = {
    "User:intake": {  # services/intake: routes.py, admission.py, gate.py, agents.py, claims.py, duties.py;
        # delivery/reader.py
        "Read": {topics.RECEIPTS.name, topics.INTAKE_CLAIMS.name, REFERRALS, topics.ALERT_STATES.name, GATES},
        "Write": {topics.EVENTS.name, topics.AUDIT.name, topics.INTAKE_CLAIMS.name, topics.ANSWERS.name,
                  topics.DEAD_LETTERS.name, topics.ANSWERS_REFUSED.name, NOTICES},
    },
    "User:router": {  # services/router
        "Read": {topics.EVENTS.name},
        "Write": {REFERRALS, topics.POLICE_ALERTS.name, topics.DEAD_LETTERS.name, topics.RECEIPTS.name,
                  topics.AUDIT.name},
    },
    "User:alerts": {  # services/alerts/agents.py (tables' changelogs included)
        "Read": {topics.EVENTS.name, topics.POLICE_ALERTS.name, REFERRALS, topics.ANSWERS.name,
                 topics.ESCALATIONS.name, topics.CASES.name, topics.ALERT_STATES.name, topics.ALERT_PARKED.name},
        "Write": {topics.POLICE_ALERTS.name, REFERRALS, topics.ESCALATIONS.name, topics.CASES.name,
                  topics.ALERT_STATES.name, topics.ALERT_PARKED.name, topics.ANSWERS_REFUSED.name, NOTICES},
    },
    "User:broadcast": {  # services/broadcast/agents.py
        "Read": {topics.EVENTS.name, topics.BROADCAST_STATE.name},
        "Write": {CHANNELS, topics.BROADCAST_REFUSALS.name, topics.BROADCAST_STATE.name, topics.DEAD_LETTERS.name},
    },
    "User:operator": {  # services/intake/operator.py (deadletters, replay), services/report/reader.py
        "Read": {topics.DEAD_LETTERS.name, topics.ESCALATIONS.name, topics.POLICE_ALERTS.name,
                 topics.ALERT_STATES.name, topics.CASES.name, REFERRALS},
        "Write": {topics.EVENTS.name, topics.AUDIT.name},
    },
    "User:auditor": {"Read": {topics.AUDIT.name}, "Write": set()},
    "User:console": {  # services/console: agents.py (the board's reader, refusals included), answers.py,
        # closing.py
        "Read": {topics.ALERT_STATES.name, topics.CASES.name, topics.BROADCAST_STATE.name,
                 topics.ANSWERS_REFUSED.name},
        "Write": {topics.ANSWERS.name, topics.EVENTS.name, topics.AUDIT.name},
    },
}


def desk_needs(agency: str) -> dict[str, set[str]]:
    """`tail` (services/delivery/tail.py); police units and the joint office, which alerts are
    addressed and escalated to, also `page` and `cases` (services/alerts). No desk writes answers
    on Kafka: `ack|accept|reject|done` answer through the intake with the agency's token."""
    needs = {"Read": {referral_topic_name(agency)}, "Write": {topics.AUDIT.name}}
    if agency in police_units() or agency == "anti_trafficking_office":
        needs["Read"] |= {topics.CASES.name, topics.ALERT_STATES.name}
    return needs


def agency_needs(agency: str) -> dict[str, set[str]]:
    """An agency's own system (`User:agency.<code>`): writes its own gate topics, nothing else; reads
    its own referrals and its own refusal notices, and for police units and the joint office the
    alerts, escalations and cases (the catalog's `agency` readers); the police also the refusals of
    their broadcast releases."""
    needs = {"Read": {referral_topic_name(agency), refusals_topic_name(agency)},
             "Write": {t.name for t in gate_topics(agency)}}
    if agency in police_units() or agency == "anti_trafficking_office":
        needs["Read"] |= {topics.POLICE_ALERTS.name, topics.ESCALATIONS.name, topics.CASES.name}
    if agency in police_units():
        needs["Read"] |= {topics.BROADCAST_REFUSALS.name}
    return needs


@pytest.fixture(scope="module")
def bindings() -> list[Binding]:
    return expand(load_plan())


def granted(bindings: list[Binding], principal: str, operation: str) -> set[str]:
    """Topics `principal` may `operation`, with every referral topic (and every channel) folded."""
    names = {b.name for b in bindings if b.principal == principal and b.operation == operation
             and b.resource == "topic"}
    every_referral = {referral_topic_name(a) for a in agencies()}
    if every_referral <= names:
        names = (names - every_referral) | {REFERRALS}
    every_gate = {t.name for a in agencies() for t in gate_topics(a)}
    if every_gate <= names:
        names = (names - every_gate) | {GATES}
    every_notices = {refusals_topic_name(a) for a in agencies()}
    if every_notices <= names:
        names = (names - every_notices) | {NOTICES}
    channels = {topics.broadcast_topic(c).name for c in topics.BROADCAST_CHANNELS}
    if channels <= names:
        names = (names - channels) | {CHANNELS}
    return names


@pytest.mark.parametrize("principal", sorted(NEEDS))
def test_each_service_and_tool_gets_exactly_what_its_code_uses(bindings: list[Binding], principal: str) -> None:
    for operation in ("Read", "Write"):
        assert granted(bindings, principal, operation) == NEEDS[principal][operation], (principal, operation)
        for topic in NEEDS[principal][operation]:
            if topic not in (REFERRALS, CHANNELS, GATES, NOTICES):
                assert topic in granted(bindings, principal, "Describe"), (principal, topic)


def test_each_agency_desk_reads_its_own_referrals_and_police_desks_their_alerts(bindings: list[Binding]) -> None:
    for agency in agencies():
        principal = f"User:desk.{agency}"
        for operation in ("Read", "Write"):
            assert granted(bindings, principal, operation) == desk_needs(agency)[operation], (agency, operation)
    # A police desk gets the alert, its re-sends and escalations (each alert's state in
    # `alerts.states` carries them), not only the lead referral.
    assert {topics.ALERT_STATES.name, topics.CASES.name} <= granted(
        bindings, "User:desk.police.command_center", "Read")


def test_each_agency_system_writes_its_own_gate_topics_only_and_reads_what_it_is_entitled_to(
        bindings: list[Binding]) -> None:
    for agency in agencies():
        principal = f"User:agency.{agency}"
        for operation in ("Read", "Write"):
            assert granted(bindings, principal, operation) == agency_needs(agency)[operation], (agency, operation)
    # A police command centre's system gets the alert, its re-sends and escalations and the cases.
    assert {topics.POLICE_ALERTS.name, topics.ESCALATIONS.name, topics.CASES.name} <= granted(
        bindings, "User:agency.police.command_center", "Read")
    # A hospital's does not: its own referrals and its own refusal notices only.
    assert granted(bindings, "User:agency.health.designated_medical_institution", "Read") == {
        "referrals.health.designated_medical_institution", "agency.health.designated_medical_institution.refusals"}


def test_no_agency_principal_writes_the_bus_topics_or_another_agencys_gate_topics(bindings: list[Binding]) -> None:
    """The topic says who wrote a message: that holds only while each gate topic has one writer,
    its agency's principal, and no agency writes where the agency is only a field."""
    for agency in agencies():
        for spec in gate_topics(agency):
            writers = {b.principal for b in bindings if b.name == spec.name and b.operation == "Write"}
            assert writers == {f"User:agency.{agency}"}, spec.name
            readers = {b.principal for b in bindings if b.name == spec.name and b.operation == "Read"}
            assert readers == {"User:intake"}, spec.name
    hospital = "User:agency.health.designated_medical_institution"
    hospital_writes = {b.name for b in bindings if b.principal == hospital and b.operation == "Write"}
    assert "agency.police.command_center.events" not in hospital_writes
    assert "agency.health.events" not in hospital_writes  # not even its parent agency's
    agency_writes = {b.name for b in bindings if b.principal.startswith("User:agency.") and b.operation == "Write"}
    assert not agency_writes & {topics.EVENTS.name, topics.ANSWERS.name, topics.AUDIT.name,
                                topics.DEAD_LETTERS.name, topics.ANSWERS_REFUSED.name}
    assert all(name.startswith("agency.") for name in agency_writes)
    # Groups: an agency's own, by a prefix no other agency's groups share.
    for b in bindings:
        if b.principal.startswith("User:agency.") and b.resource == "group":
            agency = b.principal.removeprefix("User:agency.")
            assert b.name == f"agency.{agency}.system"
            assert not any(f"agency.{other}.system".startswith(b.name) for other in agencies() if other != agency)


def test_an_agencys_refusal_notices_are_read_by_that_agency_alone_and_written_by_the_gate_alone(
        bindings: list[Binding]) -> None:
    """A notice names the ids of a message an agency wrote: no other agency reads it (not even a
    parent or sub-unit), and no agency can write one to make another believe it was refused: only
    the intake's gate and the alerts service write them."""
    for agency in agencies():
        name = refusals_topic_name(agency)
        readers = {b.principal for b in bindings if b.name == name and b.operation == "Read"}
        assert readers == {f"User:agency.{agency}"}, name
        writers = {b.principal for b in bindings if b.name == name and b.operation == "Write"}
        assert writers == {"User:intake", "User:alerts"}, name


def test_answers_are_written_only_by_the_bus_services_that_authenticate_who_answers(bindings: list[Binding]) -> None:
    """The intake (an agency's token, or its gate topic) and the console (its signed-in officers):
    no desk, no agency system. The alerts service still authorises every answer, whoever wrote it."""
    writers = {b.principal for b in bindings if b.name == topics.ANSWERS.name and b.operation == "Write"}
    assert writers == {"User:intake", "User:console"}


#: The catalog's participants that are principals of the plan (an agency's own system and a
#: broadcast channel are outside it: the operators give them principals, if any).
PLAN_ROLES = {"intake": "User:intake", "router": "User:router", "alerts": "User:alerts",
              "broadcast": "User:broadcast", "console": "User:console", "operator": "User:operator",
              "auditor": "User:auditor"}


@pytest.mark.parametrize("operation", ["Write", "Read"])
def test_the_topic_catalog_names_the_writers_and_readers_the_plan_grants(bindings: list[Binding],
                                                                         operation: str) -> None:
    """One access story: the published contract (docs/topics.md, schemas/asyncapi.yaml), generated
    from the catalog, says who writes and reads each topic as the plan grants it."""
    for spec in all_topics():
        principals = {b.principal for b in bindings if b.resource == "topic" and b.name == spec.name
                      and b.operation == operation}
        granted = {role for role, p in PLAN_ROLES.items() if p in principals}
        granted |= {"desk"} if any(p.startswith("User:desk.") for p in principals) else set()
        granted |= {"agency"} if any(p.startswith("User:agency.") for p in principals) else set()
        listed = spec.writers if operation == "Write" else spec.readers
        assert {w for w in listed if w in PLAN_ROLES or w in ("desk", "agency")} == granted, (spec.name, operation)
    assert "agency" not in topics.ANSWERS.writers and "desk" not in topics.ANSWERS.writers
    assert "agency" not in topics.EVENTS.writers


def test_only_the_intake_the_operators_replay_and_the_console_write_inbound_events(
        bindings: list[Binding]) -> None:
    # The console: only the resolutions of the police officers it signs in (services/console/closing.py).
    # Agencies' own systems: through the intake (its HTTP API, or its gate on their own topics).
    writers = {b.principal for b in bindings if b.name == topics.EVENTS.name and b.operation == "Write"}
    assert writers == {"User:intake", "User:operator", "User:console"}


def test_every_principal_of_the_plan_is_a_known_role(bindings: list[Binding]) -> None:
    desks = {f"User:desk.{a}" for a in agencies()}
    systems = {f"User:agency.{a}" for a in agencies()}
    assert {b.principal for b in bindings} == set(NEEDS) | desks | systems


def test_the_router_writes_what_the_plan_lets_it(bindings: list[Binding]) -> None:
    deadlines = Deadlines.load()
    router = Router(load_rulebook(), deadlines, emitters(deadlines))
    written: set[str] = set()
    for raw in [json.dumps(e).encode() for e in scripted_events()] + [INVALID_EVENT]:
        written |= {m.topic for m in router.handle(raw, Position(topics.EVENTS.name, 0, 0)).messages}
    allowed = {b.name for b in bindings if b.principal == "User:router" and b.operation == "Write"}
    assert written <= allowed, written - allowed


def test_the_intake_writes_what_the_plan_lets_it(bindings: list[Binding], tmp_path: Path) -> None:
    publisher = FakePublisher()
    store = IntakeStore(None)
    referral_id = str(uuid.uuid4())
    store.apply_duties(0, [(0, Duty(referral_id, str(uuid.uuid4()), "referral", "sent", frozenset({HOSPITAL}), None))])
    app = create_app(IntakeSettings(consume_receipts=False), KafkaSettings(), StateSettings(state_dir=tmp_path),
                     publisher=publisher, registry=CollectorRegistry(), store=store)
    with TestClient(app) as client:
        r = client.post("/v1/events", content=body(hospital_event()),
                        headers={"Content-Type": "application/json", **auth()})
        assert r.status_code == 202
        r = client.post(f"/v1/referrals/{referral_id}/answers", content=b'{"answer": "acknowledged"}',
                        headers={"Content-Type": "application/json", **auth()})
        assert r.status_code == 202
        # Its gate: an admitted event and answer, a refused event (a dead letter), a refused answer,
        # and a notice of each refusal on the agency's own refusals topic.
        gate = Gate(app.state.intake)
        hospital_events, hospital_answers = (t.name for t in gate_topics(HOSPITAL))
        for topic, raw in ((hospital_events, body(hospital_event())), (hospital_events, b"not json"),
                           (hospital_answers, json.dumps({"referral_id": referral_id, "answer": "accepted"}).encode()),
                           (hospital_answers, b"ACK")):
            assert not asyncio.run(gate.handle(topic, 0, 0, raw)).retry
    allowed = {b.name for b in bindings if b.principal == "User:intake" and b.operation == "Write"}
    written = {topic for topic, _, _ in publisher.sent}
    assert written <= allowed, written - allowed
    assert {topics.ANSWERS.name, topics.DEAD_LETTERS.name, topics.ANSWERS_REFUSED.name,
            refusals_topic_name(HOSPITAL)} <= written


def test_every_catalog_topic_has_a_writer_and_a_reader(bindings: list[Binding]) -> None:
    # Read by principals outside this plan: CAP channels by outside broadcasters.
    outside_readers = {topics.broadcast_topic(c).name for c in topics.BROADCAST_CHANNELS}
    for spec in (*all_topics(), topics.ALERT_STATES, topics.ALERT_PARKED):
        ops = {b.operation for b in bindings if b.resource == "topic" and b.name == spec.name}
        assert "Write" in ops, spec.name
        if spec.name not in outside_readers:
            assert "Read" in ops, spec.name
    assert all(b.pattern == "literal" for b in bindings if b.resource == "topic")


def test_invalid_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown topic constant"):
        AclPlan.model_validate({"principals": [{"principal": "User:x", "allow": [{"topic": "NOPE", "ops": ["Read"]}]}]})
    with pytest.raises(ValueError, match="exactly one resource"):
        AclPlan.model_validate({"principals": [{"principal": "User:x", "allow": [{"ops": ["Read"]}]}]})
    with pytest.raises(ValueError, match="agencies needs for_each_agency"):
        AclPlan.model_validate({"principals": [{"principal": "User:x", "agencies": ["police.*"],
                                                "allow": [{"topic": "AUDIT", "ops": ["Read"]}]}]})
