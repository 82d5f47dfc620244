"""The intake's gate (services/intake/gate.py): a message on an agency's own Kafka topic is admitted
or refused exactly as the HTTP API admits or refuses the same body with that agency's token, and
is published as the intake publishes it. No broker: the intake's context with a recording publisher.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from bus.kafka.publisher import BrokerUnavailable
from bus.settings import KafkaSettings, StateSettings
from schemas.alerts import ReferralResponse
from schemas.answers import RefusedAnswer
from schemas.notices import RefusalNotice
from schemas.receipts import AuditRecord
from schemas.referrals import DeadLetter
from services.intake import gate as gate_module
from services.intake.admission import IntakeContext
from services.intake.app import create_app
from services.intake.duties import DutiesUnavailable
from services.intake.gate import Gate, Outcome, gate_topic_names
from services.intake.settings import IntakeSettings
from services.intake.store import Duty, IntakeStore
from tests.unit.intake.intake_fakes import HOSPITAL, FakePublisher, app_of, auth, body, hospital_event
from topics.catalog import (
    ANSWERS,
    ANSWERS_REFUSED,
    AUDIT,
    DEAD_LETTERS,
    EVENTS,
    INTAKE_CLAIMS,
    gate_answers_topic_name,
    gate_events_topic_name,
    key_of,
    refusals_topic_name,
)

CENTRE = "police.command_center"
ALERT, LEAD, DONE, OFFICE_ONLY = (str(uuid.uuid4()) for _ in range(4))
CASE_EVENT = str(uuid.uuid4())
JSON = {"Content-Type": "application/json"}


def duties() -> IntakeStore:
    """What the intake has read of `alerts.states` (as in test_answers.py)."""
    store = IntakeStore(None)
    store.apply_duties(0, [
        (0, Duty(ALERT, CASE_EVENT, "alert", "sent", frozenset({CENTRE, "anti_trafficking_office"}), LEAD)),
        (1, Duty(LEAD, CASE_EVENT, "referral", "sent", frozenset({CENTRE}), ALERT)),
        (2, Duty(DONE, CASE_EVENT, "referral", "done", frozenset({"civil_affairs"}), None)),
        (3, Duty(OFFICE_ONLY, CASE_EVENT, "referral", "accepted", frozenset({"anti_trafficking_office"}), None)),
    ])
    return store


class Intake:
    """One intake (no broker): its HTTP API and its gate share one context, one store, one publisher."""

    def __init__(self, tmp_path: Path, store: IntakeStore | None = None) -> None:
        self.publisher = FakePublisher()
        self.registry = CollectorRegistry()
        app = create_app(IntakeSettings(consume_receipts=False, gate_lookup_wait_s=0), KafkaSettings(),
                         StateSettings(state_dir=tmp_path), publisher=self.publisher, registry=self.registry,
                         store=store if store is not None else duties())
        self.client = TestClient(app)
        self.client.__enter__()
        self.ctx: IntakeContext = app_of(self.client).state.intake
        self.gate = Gate(self.ctx)
        self.offset = 0
        self.http_fields: list[dict[str, str]] = []

    def close(self) -> None:
        self.client.__exit__(None, None, None)

    def kafka(self, topic: str, raw: bytes | None) -> Outcome:
        """The gate reads one message at the next offset of `topic`."""
        self.offset += 1
        return asyncio.run(self.gate.handle(topic, 0, self.offset, raw))

    def event(self, agency: str, raw: bytes) -> str:
        return self.kafka(gate_events_topic_name(agency), raw).outcome

    def answer(self, agency: str, raw: bytes) -> str:
        return self.kafka(gate_answers_topic_name(agency), raw).outcome

    def http_event(self, agency: str, raw: bytes) -> str:
        r = self.client.post("/v1/events", content=raw, headers={**JSON, **auth(agency)})
        self.http_fields = r.json()["error"]["fields"] if r.status_code >= 400 else []
        return _outcome(r)

    def http_answer(self, agency: str, raw: bytes) -> str:
        referral_id = _referral_id_of(raw)
        r = self.client.post(f"/v1/referrals/{referral_id}/answers", content=raw, headers={**JSON, **auth(agency)})
        self.http_fields = r.json()["error"]["fields"] if r.status_code >= 400 else []
        return _outcome(r)

    def notices(self) -> list[tuple[str, bytes, RefusalNotice]]:
        """(topic, key, notice) of every refusal notice written, to whichever agency."""
        return [(t, k, RefusalNotice.model_validate_json(v)) for t, k, v in self.publisher.sent
                if t.startswith("agency.") and t.endswith(".refusals")]

    def gate_count(self, agency: str, message: str, outcome: str) -> float:
        value = self.registry.get_sample_value("referral_bus_intake_gate_total",
                                               {"agency": agency, "message": message, "outcome": outcome})
        return value or 0.0


def _outcome(r: Any) -> str:
    if r.status_code == 202:
        return "duplicate" if r.headers.get("Idempotent-Replayed") == "true" else "admitted"
    return str(r.json()["error"]["code"])


def _referral_id_of(raw: bytes) -> str:
    try:
        value = json.loads(raw)
        return str(value["referral_id"]) if isinstance(value, dict) and "referral_id" in value else ALERT
    except ValueError:
        return ALERT


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Intake]:
    one = Intake(tmp_path / "gate")
    yield one
    one.close()


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Intake]:
    """Another intake, for the HTTP side of a parity check (its own store, the same states)."""
    one = Intake(tmp_path / "http")
    yield one
    one.close()


def _release(agency: str) -> dict[str, Any]:
    return hospital_event(kind="missing_child_info_release", jurisdiction="xian", case_id=str(uuid.uuid4()),
                          guardian_consent=True, public_contact="110", reporter={"agency": agency, "role": "public"})


EVENTS_SENT: list[tuple[str, str, bytes]] = [
    # (topic's agency / token's agency, what happens, body)
    (HOSPITAL, "admitted", body(hospital_event())),
    (HOSPITAL, "agency_mismatch", body(hospital_event(reporter={"agency": CENTRE, "role": "police"}))),
    ("education", "agency_mismatch", body(hospital_event())),
    (HOSPITAL, "kind_not_permitted", body(_release(HOSPITAL))),
    (CENTRE, "admitted", body(_release(CENTRE))),
    ("police", "admitted", body(hospital_event(kind="case_resolved", case_id=str(uuid.uuid4()), outcome="found_alive",
                                               reporter={"agency": "police", "role": "public"}))),
    (HOSPITAL, "kind_not_permitted", body(hospital_event(kind="case_resolved", case_id=str(uuid.uuid4()),
                                                         outcome="found_alive"))),
    (HOSPITAL, "invalid_json", b'{"event_id": '),
    (HOSPITAL, "invalid_event", body(hospital_event(kind=" child_missing_reported"))),
    (HOSPITAL, "invalid_string", body(hospital_event(description="\u202eZq9mark hidden"))),
    (HOSPITAL, "empty_message", b""),
]


@pytest.mark.parametrize(("agency", "expected", "raw"), EVENTS_SENT)
def test_an_event_on_an_agencys_topic_is_admitted_or_refused_as_the_http_api_would(
        intake: Intake, twin: Intake, agency: str, expected: str, raw: bytes) -> None:
    assert twin.http_event(agency, raw) == expected
    assert intake.event(agency, raw) == expected
    assert intake.gate_count(agency, "event", expected) == 1
    if expected == "admitted":
        # Published as the intake publishes: the same bytes, the same key, on events.inbound.
        assert [(t, k, v) for t, k, v in intake.publisher.sent if t == EVENTS.name] == [
            (t, k, v) for t, k, v in twin.publisher.sent if t == EVENTS.name]
        assert intake.publisher.on(DEAD_LETTERS.name) == []
        assert intake.notices() == []
    else:
        assert intake.publisher.on(EVENTS.name) == []
        (letter,) = [DeadLetter.model_validate_json(v) for v in intake.publisher.on(DEAD_LETTERS.name)]
        assert (letter.reason, letter.service, letter.topic) == (expected, "intake", gate_events_topic_name(agency))
        assert base64.b64decode(letter.original_b64) == raw
        assert "Zq9mark" not in letter.model_dump_json(exclude={"original_b64"})
        # The agency whose topic it was (whatever the event named) is told why, as HTTP would say it.
        ((topic, key, notice),) = intake.notices()
        assert topic == refusals_topic_name(agency)
        assert (notice.message, notice.reason, notice.event_id) == ("event", expected, letter.event_id)
        assert [f.model_dump() for f in notice.fields] == letter.errors == twin.http_fields
        assert (notice.topic, notice.partition, notice.offset) == (letter.topic, letter.partition, letter.offset)
        assert key == key_of("refused_position", notice.model_dump(mode="json"))
        assert notice.received_at == letter.received_at
        assert "Zq9mark" not in notice.model_dump_json()


def test_an_admitted_event_is_keyed_claimed_and_audited_as_the_intake_does(intake: Intake) -> None:
    case_id = str(uuid.uuid4())
    event = hospital_event(case_id=case_id)
    assert intake.event(HOSPITAL, body(event)) == "admitted"
    ((_, key, value),) = [s for s in intake.publisher.sent if s[0] == EVENTS.name]
    assert (key, value) == (case_id.encode(), body(event))
    (audit,) = [AuditRecord.model_validate_json(v) for v in intake.publisher.on(AUDIT.name)]
    assert (audit.action, audit.event_id, audit.agency, audit.detail) == (
        "published", event["event_id"], HOSPITAL, gate_events_topic_name(HOSPITAL))
    accepted = intake.ctx.store.accepted(event["event_id"])
    assert accepted is not None and accepted.agency == HOSPITAL
    # Without a case, keyed by the event id.
    other = hospital_event()
    assert intake.event(HOSPITAL, body(other)) == "admitted"
    assert [k for t, k, _ in intake.publisher.sent if t == EVENTS.name][-1] == other["event_id"].encode()
    # The event id is the topic's agency's, as a token's claim makes it.
    assert intake.ctx.store.owner(other["event_id"]) == HOSPITAL


def test_a_message_read_again_after_a_restart_is_not_published_twice(intake: Intake) -> None:
    event = body(hospital_event())
    assert intake.event(HOSPITAL, event) == "admitted"
    assert intake.event(HOSPITAL, event) == "duplicate"
    assert len(intake.publisher.on(EVENTS.name)) == 1
    # The same id with another body, or from another agency, is refused and not published.
    changed = body({**json.loads(event), "description": "changed"})
    assert intake.event(HOSPITAL, changed) == "event_id_conflict"
    assert intake.event("education", body({**json.loads(event), "reporter": {"agency": "education",
                                                                               "role": "teacher"}})) \
        == "event_id_conflict"
    assert len(intake.publisher.on(EVENTS.name)) == 1
    assert [DeadLetter.model_validate_json(v).reason for v in intake.publisher.on(DEAD_LETTERS.name)] == [
        "event_id_conflict", "event_id_conflict"]
    assert [(t, n.reason) for t, _, n in intake.notices()] == [
        (refusals_topic_name(HOSPITAL), "event_id_conflict"), (refusals_topic_name("education"), "event_id_conflict")]


def test_a_refusal_whose_notice_failed_is_decided_again_without_a_second_record(
        intake: Intake, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notice is written after the shared record; if the broker refuses the notice, the
    message is read again, and the operators' record is not written twice."""
    publish = intake.publisher.publish
    failures = iter([True])

    async def notice_fails_once(topic: str, key: bytes, value: bytes) -> Any:
        if topic.endswith(".refusals") and next(failures, False):
            raise BrokerUnavailable("KafkaTimeoutError")
        return await publish(topic, key, value)

    monkeypatch.setattr(intake.publisher, "publish", notice_fails_once)
    topic = gate_events_topic_name(HOSPITAL)
    assert asyncio.run(intake.gate.handle(topic, 0, 7, b"not json")).retry
    assert len(intake.publisher.on(DEAD_LETTERS.name)) == 1 and intake.notices() == []
    assert asyncio.run(intake.gate.handle(topic, 0, 7, b"not json")).outcome == "invalid_json"
    assert len(intake.publisher.on(DEAD_LETTERS.name)) == 1 and len(intake.notices()) == 1
    # The next refusal of the same message (a restart) is recorded again, as before.
    assert asyncio.run(intake.gate.handle(topic, 0, 7, b"not json")).outcome == "invalid_json"
    assert len(intake.publisher.on(DEAD_LETTERS.name)) == 2 and len(intake.notices()) == 2


def test_a_refusal_decided_again_after_a_restart_repeats_its_notice_under_the_same_key(intake: Intake) -> None:
    """The gate commits after the notice: a restart before the commit refuses the message again,
    and the agency can tell the repeat by its key (the refused message's position)."""
    topic = gate_events_topic_name(HOSPITAL)
    for _ in range(2):
        assert asyncio.run(intake.gate.handle(topic, 0, 41, b"not json")).outcome == "invalid_json"
    first, again = intake.notices()
    assert first[:2] == again[:2] == (refusals_topic_name(HOSPITAL), f"{topic}:0:41".encode())
    times = {"received_at", "refused_at"}
    assert first[2].model_dump(exclude=times) == again[2].model_dump(exclude=times)


def test_an_event_id_another_agency_owns_through_http_is_refused_on_kafka(intake: Intake) -> None:
    event = hospital_event()
    assert intake.http_event(HOSPITAL, body(event)) == "admitted"
    copy = {**event, "reporter": {"agency": "transport", "role": "public"}}
    assert intake.event("transport", body(copy)) == "event_id_conflict"
    assert len(intake.publisher.on(EVENTS.name)) == 1


def _answer(referral_id: str, **fields: Any) -> bytes:
    return json.dumps({"response_id": str(uuid.uuid4()), "referral_id": referral_id, **fields}).encode()


ANSWERS_SENT: list[tuple[str, str, bytes]] = [
    (CENTRE, "admitted", _answer(ALERT, answer="acknowledged", agency=CENTRE, officer="desk 3")),
    (CENTRE, "admitted", _answer(ALERT, answer="acknowledged")),  # no agency named: the topic's
    ("anti_trafficking_office", "admitted", _answer(LEAD, answer="accepted", agency="anti_trafficking_office")),
    (CENTRE, "agency_mismatch", _answer(ALERT, answer="acknowledged", agency="anti_trafficking_office")),
    ("education", "not_entitled", _answer(LEAD, answer="accepted", agency="education")),
    (CENTRE, "unknown_id", _answer(str(uuid.uuid4()), answer="acknowledged", agency=CENTRE)),
    ("civil_affairs", "already_final", _answer(DONE, answer="done", note="again", agency="civil_affairs")),
    ("anti_trafficking_office", "no_effect", _answer(OFFICE_ONLY, answer="acknowledged",
                                                     agency="anti_trafficking_office")),
    (CENTRE, "invalid_answer", _answer(ALERT, answer="ACK", agency=CENTRE)),
    (CENTRE, "invalid_answer", _answer(ALERT, answer="rejected", agency=CENTRE)),
    (CENTRE, "invalid_string", _answer(ALERT, answer="acknowledged", officer="\u202eZq9mark")),
    (CENTRE, "invalid_json", b"ACK"),
]


@pytest.mark.parametrize(("agency", "expected", "raw"), ANSWERS_SENT)
def test_an_answer_on_an_agencys_topic_is_admitted_or_refused_as_the_http_api_would(
        intake: Intake, twin: Intake, agency: str, expected: str, raw: bytes) -> None:
    assert twin.http_answer(agency, raw) == expected
    assert intake.answer(agency, raw) == expected
    assert intake.gate_count(agency, "answer", expected) == 1
    if expected == "admitted":
        (answer,) = [ReferralResponse.model_validate_json(v) for v in intake.publisher.on(ANSWERS.name)]
        (http,) = [ReferralResponse.model_validate_json(v) for v in twin.publisher.on(ANSWERS.name)]
        # The same answer, dated by each intake when it published it (the sender gave no time).
        assert answer.model_dump(exclude={"responded_at"}) == http.model_dump(exclude={"responded_at"})
        assert answer.agency == agency
        assert intake.publisher.on(ANSWERS_REFUSED.name) == []
        assert intake.notices() == []
    else:
        assert intake.publisher.on(ANSWERS.name) == []
        (refusal,) = [RefusedAnswer.model_validate_json(v) for v in intake.publisher.on(ANSWERS_REFUSED.name)]
        assert (refusal.reason, refusal.topic) == (expected, gate_answers_topic_name(agency))
        assert "Zq9mark" not in refusal.model_dump_json()
        ((topic, _, notice),) = intake.notices()
        assert topic == refusals_topic_name(agency)
        assert (notice.message, notice.reason, notice.response_id, notice.referral_id) == (
            "answer", expected, refusal.response_id, refusal.referral_id)
        assert notice.fields == refusal.fields
        assert [f.model_dump() for f in notice.fields] == twin.http_fields
        assert (notice.topic, notice.offset) == (refusal.topic, refusal.offset)
        assert "Zq9mark" not in notice.model_dump_json()


def test_an_answer_read_again_is_published_once_and_a_reused_response_id_is_refused(intake: Intake) -> None:
    raw = _answer(ALERT, answer="acknowledged", agency=CENTRE)
    assert intake.answer(CENTRE, raw) == "admitted"
    assert intake.answer(CENTRE, raw) == "duplicate"
    assert len(intake.publisher.on(ANSWERS.name)) == 1
    other = json.dumps({**json.loads(raw), "answer": "accepted"}).encode()
    assert intake.answer(CENTRE, other) == "response_id_conflict"
    assert len(intake.publisher.on(ANSWERS.name)) == 1


def test_what_cannot_be_decided_now_is_read_again_not_refused(intake: Intake, monkeypatch: pytest.MonkeyPatch) -> None:
    intake.publisher.down = True
    outcome = intake.kafka(gate_events_topic_name(HOSPITAL), body(hospital_event()))
    assert outcome.retry
    assert intake.kafka(gate_events_topic_name(HOSPITAL), b"not json").retry  # even its dead letter
    intake.publisher.down = False

    async def away(duty_id: str, wait_s: float) -> Duty | None:
        raise DutiesUnavailable("not read yet")

    monkeypatch.setattr(intake.ctx.duties, "find", away)
    assert intake.kafka(gate_answers_topic_name(CENTRE), _answer(ALERT, answer="acknowledged")).retry
    assert intake.publisher.sent == []
    assert intake.registry.get_sample_value("referral_bus_intake_gate_total",
                                            {"agency": HOSPITAL, "message": "event", "outcome": "admitted"}) is None


def test_an_unexpected_error_is_one_refusal_and_the_gate_goes_on(intake: Intake,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Zq9mark from a bug")

    monkeypatch.setattr(gate_module, "admit_event", broken)
    monkeypatch.setattr(gate_module, "admit_answer", broken)
    assert intake.event(HOSPITAL, body(hospital_event())) == "internal_error"
    assert intake.answer(CENTRE, _answer(ALERT, answer="acknowledged")) == "internal_error"
    (letter,) = [DeadLetter.model_validate_json(v) for v in intake.publisher.on(DEAD_LETTERS.name)]
    (refusal,) = [RefusedAnswer.model_validate_json(v) for v in intake.publisher.on(ANSWERS_REFUSED.name)]
    assert letter.reason == refusal.reason == "internal_error"
    assert "Zq9mark" not in letter.model_dump_json() + refusal.model_dump_json()
    assert [(t, n.message, n.reason) for t, _, n in intake.notices()] == [
        (refusals_topic_name(HOSPITAL), "event", "internal_error"), (refusals_topic_name(CENTRE), "answer",
                                                                     "internal_error")]
    assert "Zq9mark" not in "".join(n.model_dump_json() for _, _, n in intake.notices())
    assert intake.registry.get_sample_value("referral_bus_internal_errors_total", {"step": "gate"}) == 2


def test_only_the_agencies_gate_topics_are_read() -> None:
    names = gate_topic_names()
    assert gate_events_topic_name(CENTRE) in names and gate_answers_topic_name(HOSPITAL) in names
    assert EVENTS.name not in names and ANSWERS.name not in names and INTAKE_CLAIMS.name not in names
    assert all(n.startswith("agency.") for n in names)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=300),
                     st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                  lambda inner: st.lists(inner, max_size=4)
                                  | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                                  max_leaves=12).map(lambda v: json.dumps(v).encode())),
       answers=st.booleans())
def test_whatever_a_sender_writes_is_one_outcome_with_a_reason_and_never_an_echo(
        intake: Intake, raw: bytes, answers: bool) -> None:
    before = len(intake.publisher.sent)
    topic = gate_answers_topic_name(CENTRE) if answers else gate_events_topic_name(HOSPITAL)
    outcome = intake.kafka(topic, raw + b"Zq9mark")
    assert not outcome.retry and outcome.outcome
    written = intake.publisher.sent[before:]
    records = [(t, v) for t, _, v in written if t in (DEAD_LETTERS.name, ANSWERS_REFUSED.name)]
    assert len(records) == 1
    topic_written, value = records[0]
    shown = (DeadLetter.model_validate_json(value).model_dump_json(exclude={"original_b64", "original_prefix_b64"})
             if topic_written == DEAD_LETTERS.name else RefusedAnswer.model_validate_json(value).model_dump_json())
    assert "Zq9mark" not in shown
    assert not any(t in (EVENTS.name, ANSWERS.name, INTAKE_CLAIMS.name) for t, _, _ in written)
    notices = [(t, v) for t, _, v in written if t.endswith(".refusals")]
    assert [t for t, _ in notices] == [refusals_topic_name(CENTRE if answers else HOSPITAL)]
    notice = RefusalNotice.model_validate_json(notices[0][1])
    assert notice.reason == outcome.outcome and "Zq9mark" not in notice.model_dump_json()
