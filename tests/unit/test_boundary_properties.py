"""Properties of every per-message step that reads what a sender wrote (issue #17).

For arbitrary bytes, arbitrary JSON and events with arbitrary fields (lone surrogates, controls,
NaN, deep nesting, wrong types, unknown keys): no exception escapes the step, each input has
exactly one outcome with a reason, and no string the sender wrote appears in the outcome's
reason, a log line or an audit record. The generated strings are marked (MARK at both ends:
tests/hostile.py), so an echo is found exactly, not by chance (hypothesis also draws strings
from the code under test, which its fixed texts hold by design). Log lines are captured from
structlog.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from bus.agency_reader import AgencyReader
from bus.boundary import REASONS, Position
from bus.delivery_metrics import DeliveryMetrics
from bus.demo_events import scripted_events
from bus.settings import KafkaSettings, StateSettings
from rules.catalog import COMMAND_CENTER, catalog
from rules.deadlines import Deadlines
from rules.engine import load_rulebook, route
from schemas.alerts import ANSWERS, FINAL_STATUSES, ReferralResponse, dump, next_status
from schemas.answers import REFUSAL_REASONS, RefusedAnswer
from schemas.events import parse_event_obj
from schemas.referrals import DeadLetter, Referral
from services.alerts import lifecycle
from services.broadcast.agents import BroadcastWorker
from services.broadcast.metrics import BroadcastMetrics
from services.broadcast.settings import DEFAULT_CONFIG, BroadcastConfig, BroadcastSettings
from services.intake.agents import keep_receipt
from services.intake.app import create_app
from services.intake.claims import LogClaims
from services.intake.metrics import IntakeMetrics
from services.intake.settings import IntakeSettings
from services.intake.store import IntakeStore
from services.router.agents import Tally
from services.router.alert import police_alert
from services.router.handling import Refused, Routed, Router
from services.router.metrics import RouterMetrics
from services.router.outputs import emitters
from tests.hostile import MARK, any_text, holds_mark, json_values, marked_text, messages
from tests.unit.alerts import fakes as alerts_fakes
from tests.unit.alerts.fakes import Service as AlertsService
from tests.unit.console.console_fakes import T0, alert_pair, escalated
from tests.unit.intake.intake_fakes import FakePublisher, auth
from topics.catalog import ANSWERS_REFUSED, AUDIT, DEAD_LETTERS, RECEIPTS

HERE = Position("events.inbound", 0, 1)
#: Reasons beyond the boundary's: the models', and each step's own.
STEP_REASONS = {*REASONS, "invalid_event", "invalid_referral", "invalid_receipt", "invalid_claim", "invalid_answer"}
#: 250 examples per step in the suite; REFERRAL_BUS_PROPERTY_EXAMPLES=5000 searches harder.
PROPERTY = settings(max_examples=int(os.environ.get("REFERRAL_BUS_PROPERTY_EXAMPLES", "250")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def assert_not_repeated(raw: bytes | None, *texts: str) -> None:
    """No marked string the sender wrote appears, even in part, in any of `texts`."""
    if holds_mark(raw):
        joined = "\n".join(texts)
        assert MARK not in joined, f"repeated: ...{joined[max(0, joined.find(MARK) - 60):joined.find(MARK) + 60]}..."


def logged(logs: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(logs, ensure_ascii=False, default=str)


# -- router ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def router() -> Router:
    deadlines = Deadlines.load()
    return Router(load_rulebook(), deadlines, emitters(deadlines))


@PROPERTY
@given(raw=messages | st.none())
def test_router_step(router: Router, raw: bytes | None) -> None:
    with capture_logs() as logs:
        outcome = router.handle(raw, HERE)
        Tally().observe(outcome, RouterMetrics(CollectorRegistry()), HERE.offset)
    letters = [m for m in outcome.messages if m.topic == DEAD_LETTERS.name]
    if isinstance(outcome, Refused):
        assert outcome.reason in STEP_REASONS
        assert len(letters) == 1 and DeadLetter.model_validate_json(letters[0].value) == outcome.dead_letter
    else:
        assert isinstance(outcome, Routed) and outcome.reason == "routed" and not letters
    told = [m.value.decode() for m in outcome.messages if m.topic in (RECEIPTS.name, AUDIT.name)]
    reason = outcome.dead_letter.model_dump_json(exclude={"original_b64", "original_prefix_b64"}) \
        if isinstance(outcome, Refused) else outcome.reason
    assert_not_repeated(raw, reason, logged(logs), *told)


# -- broadcast ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker() -> BroadcastWorker:
    return BroadcastWorker(KafkaSettings(), BroadcastSettings(), BroadcastConfig.load(DEFAULT_CONFIG),
                           BroadcastMetrics(CollectorRegistry()))


@PROPERTY
@given(raw=messages | st.none())
def test_broadcast_step(worker: BroadcastWorker, raw: bytes | None) -> None:
    with capture_logs() as logs:
        step = worker.decide(raw, HERE)
    assert step.reason
    assert (step.dead_letter is not None) == (step.reason == "internal_error")
    refusals = [r.model_dump_json() for r in step.outcome.refusals] if step.outcome else []
    letter = step.dead_letter.model_dump_json(exclude={"original_b64", "original_prefix_b64"}) \
        if step.dead_letter else ""
    assert_not_repeated(raw, step.reason, letter, logged(logs), *refusals)


# -- delivery -------------------------------------------------------------------------------------


def _lead_referral() -> dict[str, Any]:
    event = parse_event_obj(scripted_events()[0])
    referral = next(r for r in route(event, load_rulebook(), deadlines=Deadlines.load())
                    if r.agency == "police.command_center")
    lead: dict[str, Any] = json.loads(referral.model_dump_json())
    return lead


@st.composite
def referral_messages(draw: st.DrawFn) -> bytes:
    referral = _lead_referral()
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(referral)) | any_text | marked_text)
        referral[key] = draw(json_values)
    return json.dumps(referral).encode("utf-8", "surrogatepass")


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[AgencyReader]:
    yield AgencyReader(KafkaSettings(), tmp_path, "police.command_center", group="delivery.police.command_center",
                       metrics=DeliveryMetrics(CollectorRegistry()))


@PROPERTY
@given(raw=messages | referral_messages() | st.none())
def test_delivery_step(reader: AgencyReader, raw: bytes | None) -> None:
    tp = TopicPartition("referrals.police.command_center", 0)
    with capture_logs() as logs:
        outcome = reader.examine(raw, tp, 5)
    if isinstance(outcome, str):
        assert outcome in STEP_REASONS | {"duplicate", "wrong_agency"}
    else:
        assert isinstance(outcome, Referral)
    assert_not_repeated(raw, outcome if isinstance(outcome, str) else "delivered", logged(logs))


# -- intake -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, FakePublisher]]:
    publisher = FakePublisher()
    app = create_app(IntakeSettings(consume_receipts=False), KafkaSettings(),
                     StateSettings(state_dir=tmp_path_factory.mktemp("intake-props")),
                     publisher=publisher, registry=CollectorRegistry())
    with TestClient(app) as client:
        yield client, publisher


DOCUMENTED = {202, 401, 403, 408, 409, 413, 415, 422, 429, 503}


@PROPERTY
@given(raw=messages)
def test_intake_publish_handler(intake: tuple[TestClient, FakePublisher], raw: bytes) -> None:
    client, publisher = intake
    before = len(publisher.sent)
    with capture_logs() as logs:
        r = client.post("/v1/events", content=raw, headers={"Content-Type": "application/json", **auth()})
    assert r.status_code in DOCUMENTED, r.text
    answer = r.json()
    if r.status_code >= 400:
        assert set(answer) == {"error"} and answer["error"]["code"] and answer["error"]["message"]
        assert len(answer["error"]["fields"]) <= 20
    audit = [v.decode() for t, _, v in publisher.sent[before:] if t == AUDIT.name]
    assert_not_repeated(raw, r.text, logged(logs), *audit)


@PROPERTY
@given(segment=any_text | marked_text)
def test_intake_receipt_handler(intake: tuple[TestClient, FakePublisher], segment: str) -> None:
    client, _ = intake
    path = urllib.parse.quote(segment.encode("utf-8", "surrogatepass"), safe="")
    with capture_logs() as logs:
        r = client.get(f"/v1/events/{path or uuid.uuid4()}", headers=auth())
    assert r.status_code in {404, 405, 422}, r.text  # "." and "%2F" leave the route (404, 405)
    assert r.json()["error"]["code"] in {"not_found", "method_not_allowed", "invalid_request"}
    assert_not_repeated(json.dumps([segment]).encode("utf-8", "surrogatepass"), r.text, logged(logs))


@PROPERTY
@given(raw=messages | st.none())
def test_intake_receipt_and_claim_readers(raw: bytes | None) -> None:
    store = IntakeStore(None)
    metrics = IntakeMetrics(CollectorRegistry())
    claims = LogClaims(KafkaSettings(), FakePublisher(), store, "0", 1.0, metrics)
    with capture_logs() as logs:
        kept = keep_receipt(store, raw, 0, 3, metrics)
        claim = claims._decode(raw, TopicPartition("intake.claims", 0), 3)
    assert kept == "stored" or kept in STEP_REASONS
    assert_not_repeated(raw, kept, logged(logs))
    assert claim is None or str(claim.event_id)


# -- alerts: every input, and the answers -----------------------------------------------------------


ANSWER_OUTCOMES = {"applied", "parked", "duplicate", *REFUSAL_REASONS}
_AGENCIES = sorted(catalog().agencies)


@pytest.fixture(scope="module")
def alerts_service() -> tuple[AlertsService, str, str]:
    """The alerts handlers over plain dicts, with a missing child's alert and its lead referral tracked."""
    running = alerts_fakes.service()
    event = parse_event_obj(scripted_events()[0])
    lead = next(r for r in route(event, load_rulebook(), deadlines=Deadlines.load()) if r.agency == COMMAND_CENTER)
    alert = police_alert(event, [lead], Deadlines.load())
    assert alert is not None
    asyncio.run(running.handlers.on_alert(dump(alert)))
    asyncio.run(running.handlers.on_referral(dump(lead)))
    return running, str(alert.alert_id), str(lead.referral_id)


@st.composite
def answer_messages(draw: st.DrawFn, ids: tuple[str, ...]) -> bytes:
    """An answer to a tracked id (or another), with a few fields replaced, dropped or added."""
    obj: dict[str, Any] = {
        "response_id": str(uuid.uuid4()), "referral_id": draw(st.sampled_from(ids) | st.uuids().map(str)),
        "answer": draw(st.sampled_from(ANSWERS)), "agency": draw(st.sampled_from(_AGENCIES) | st.none()),
        "reason": "not ours", "note": "found", "responded_at": "2020-01-01T00:00:00+00:00"}
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(obj)) | st.sampled_from(["officer", "exercise"]) | marked_text)
        if draw(st.booleans()):
            obj[key] = draw(marked_text | json_values)
        else:
            obj.pop(key, None)
    return json.dumps(obj).encode("utf-8", "surrogatepass")


@PROPERTY
@given(data=st.data())
def test_alerts_answer_step(alerts_service: tuple[AlertsService, str, str], data: st.DataObject) -> None:
    running, alert_id, lead_id = alerts_service
    raw = data.draw(messages | answer_messages((alert_id, lead_id)) | st.none())
    received = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    before = {key: running.store.state(key) for key in (alert_id, lead_id)}
    sent = len(running.sender.sent)
    with capture_logs() as logs:
        outcome = asyncio.run(running.handlers.on_response(raw, received.timestamp()))
    assert outcome in ANSWER_OUTCOMES
    refusals = [RefusedAnswer.model_validate_json(v) for t, _, v in running.sender.sent[sent:]
                if t == ANSWERS_REFUSED.name]
    if outcome in REFUSAL_REASONS:
        assert [r.reason for r in refusals] == [outcome]  # exactly one record, with its reason
        assert all(running.store.state(key) == state for key, state in before.items())  # nothing applied
    else:
        assert refusals == []
    after = running.store.state(alert_id)
    if outcome == "applied" and after is not None and after != before[alert_id]:
        entry = after.history[-1]
        assert entry.at == received and entry.by in before[alert_id].addressed_to()  # type: ignore[union-attr]
    assert_not_repeated(raw, outcome, logged(logs), *(r.model_dump_json() for r in refusals))
    assert running.handlers.metrics.internal_errors.labels("answer")._value.get() == 0


@pytest.mark.parametrize("step", ["alert", "referral", "escalation", "event"])
@PROPERTY
@given(raw=messages | st.none())
def test_alerts_input_steps(alerts_service: tuple[AlertsService, str, str], step: str, raw: bytes | None) -> None:
    running, _, _ = alerts_service
    handler = {"alert": running.handlers.on_alert, "referral": running.handlers.on_referral,
               "escalation": running.handlers.on_escalation, "event": running.handlers.on_event}[step]
    with capture_logs() as logs:
        asyncio.run(running.handlers.guard(step, handler, raw))  # never raises for what `raw` holds
    assert running.handlers.metrics.internal_errors.labels(step)._value.get() == 0
    assert_not_repeated(raw, logged(logs))


@PROPERTY
@given(agency=st.sampled_from(_AGENCIES), reached=st.lists(st.sampled_from(_AGENCIES), max_size=3),
       status=st.sampled_from(["sent", "acknowledged", "accepted", "done", "rejected", "closed", "grouped"]),
       twin_status=st.sampled_from(["sent", "acknowledged", "accepted", "done", "rejected", "closed"]) | st.none(),
       answer=st.sampled_from(ANSWERS))
def test_answer_authorisation(agency: str, reached: list[str], status: str, twin_status: str | None,
                              answer: str) -> None:
    """Applied only for an agency the alert or its twin was addressed or escalated to, only when it
    changes one of them that is not final; otherwise one reason, and nothing changes."""
    alert, lead = alert_pair()
    for to in reached:
        alert = escalated(alert, to)
    alert = alert.model_copy(update={"status": status})
    twin = lead.model_copy(update={"status": twin_status}) if twin_status else None
    response = ReferralResponse(referral_id=alert.id, answer=answer, agency=agency,
                                reason="r", note="n")
    reason = lifecycle.authorise(alert, twin, response)
    entitled = alert.addressed_to() | (twin.addressed_to() if twin else frozenset())
    open_ones = [s for s in (alert, twin) if s is not None and s.status not in FINAL_STATUSES]
    if agency not in entitled:
        assert reason == "not_entitled"
    elif not open_ones:
        assert reason == "already_final"
    elif all(next_status(s.status, answer) is None for s in open_ones):
        assert reason == "no_effect"
    else:
        assert reason is None
        changed = [lifecycle.apply_response(s, response, T0).state for s in open_ones]
        assert any(c.status != s.status for c, s in zip(changed, open_ones, strict=True))
