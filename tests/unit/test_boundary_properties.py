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
from rules.deadlines import Deadlines
from rules.engine import load_rulebook, route
from schemas.events import parse_event_obj
from schemas.referrals import DeadLetter, Referral
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
from services.router.handling import Refused, Routed, Router
from services.router.metrics import RouterMetrics
from services.router.outputs import emitters
from tests.hostile import MARK, any_text, holds_mark, json_values, marked_text, messages
from tests.unit.intake.intake_fakes import FakePublisher, auth
from topics.catalog import AUDIT, DEAD_LETTERS, RECEIPTS

HERE = Position("events.inbound", 0, 1)
#: Reasons beyond the boundary's: the models', and each step's own.
STEP_REASONS = {*REASONS, "invalid_event", "invalid_referral", "invalid_receipt", "invalid_claim"}
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
