"""`POST /v1/referrals/{id}/answers`: an agency answers with its token what it was addressed or
escalated to; the bus dates the answer; every refusal in the error shape, before anything is written."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from bus.settings import KafkaSettings, StateSettings
from schemas.alerts import ReferralResponse
from schemas.receipts import AuditRecord
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from services.intake.store import Duty, IntakeStore
from tests.unit.intake.intake_fakes import FakePublisher, auth
from topics.catalog import ANSWERS, AUDIT

CENTRE = "police.command_center"
ALERT, LEAD, DONE, OFFICE_ONLY = (str(uuid.uuid4()) for _ in range(4))
EVENT = str(uuid.uuid4())


@pytest.fixture
def store() -> IntakeStore:
    """What the intake has read of `alerts.states`: a missing child's alert (escalated to the joint
    office) and the command centre's lead referral beside it, a done referral, and one of the office's."""
    store = IntakeStore(None)
    store.apply_duties(0, [
        (0, Duty(ALERT, EVENT, "alert", "sent", frozenset({CENTRE, "anti_trafficking_office"}), LEAD)),
        (1, Duty(LEAD, EVENT, "referral", "sent", frozenset({CENTRE}), ALERT)),
        (2, Duty(DONE, EVENT, "referral", "done", frozenset({"civil_affairs"}), None)),
        (3, Duty(OFFICE_ONLY, EVENT, "referral", "accepted", frozenset({"anti_trafficking_office"}), None)),
    ])
    return store


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def client(publisher: FakePublisher, store: IntakeStore, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(IntakeSettings(consume_receipts=False), KafkaSettings(), StateSettings(state_dir=tmp_path),
                     publisher=publisher, registry=CollectorRegistry(), store=store)
    with TestClient(app) as c:
        yield c


def post(client: TestClient, path_id: str, who: str = CENTRE, **body: Any) -> Any:
    return client.post(f"/v1/referrals/{path_id}/answers", content=json.dumps(body).encode(),
                       headers={"Content-Type": "application/json", **auth(who)})


def answers(publisher: FakePublisher) -> list[ReferralResponse]:
    return [ReferralResponse.model_validate_json(v) for v in publisher.on(ANSWERS.name)]


def test_an_addressed_agency_answers_and_gets_202_once_the_broker_has_it(client: TestClient,
                                                                        publisher: FakePublisher) -> None:
    claimed = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    r = post(client, ALERT, answer="acknowledged", officer="王明", responded_at=claimed.isoformat())
    assert r.status_code == 202, r.text
    got = r.json()
    assert (got["referral_id"], got["agency"], got["answer"], got["status"]) == (ALERT, CENTRE, "acknowledged",
                                                                                 "accepted")
    (answer,) = answers(publisher)
    assert (str(answer.referral_id), answer.agency, answer.officer, str(answer.response_id)) == (
        ALERT, CENTRE, "王明", got["response_id"])
    assert answer.responded_at == claimed  # recorded as claimed; the alerts service dates it itself
    (audit,) = [AuditRecord.model_validate_json(v) for v in publisher.on(AUDIT.name)]
    assert (audit.action, audit.event_id, str(audit.referral_id), audit.detail) == ("answered", EVENT, ALERT,
                                                                                    "acknowledged")


def test_an_agency_an_alert_was_escalated_to_may_answer_it_and_its_lead_referral(client: TestClient) -> None:
    assert post(client, ALERT, "anti_trafficking_office", answer="accepted").status_code == 202
    assert post(client, LEAD, "anti_trafficking_office", answer="accepted").status_code == 202


@pytest.mark.parametrize(("referral_id", "agency", "body", "status", "code"), [
    (str(uuid.uuid4()), CENTRE, {"answer": "acknowledged"}, 404, "unknown_id"),
    (LEAD, "education", {"answer": "accepted"}, 403, "not_entitled"),
    (ALERT, "police", {"answer": "acknowledged"}, 403, "not_entitled"),
    (ALERT, CENTRE, {"answer": "acknowledged", "agency": "education"}, 403, "agency_mismatch"),
    (DONE, "civil_affairs", {"answer": "done", "note": "again"}, 409, "already_final"),
    (OFFICE_ONLY, "anti_trafficking_office", {"answer": "acknowledged"}, 409, "no_effect"),
    (ALERT, CENTRE, {"answer": "ACK"}, 422, "invalid_answer"),
    (ALERT, CENTRE, {"answer": "rejected"}, 422, "invalid_answer"),
    (ALERT, CENTRE, {"answer": "done", "note": " "}, 422, "invalid_answer"),
    (ALERT, CENTRE, {"answer": "acknowledged", "referral_id": LEAD}, 422, "invalid_answer"),
    (ALERT, CENTRE, {"answer": "acknowledged", "officer": "\u202eZq9mark"}, 422, "invalid_string"),
])
def test_refusals_name_the_reason_and_write_nothing(client: TestClient, publisher: FakePublisher, referral_id: str,
                                                    agency: str, body: dict[str, Any], status: int, code: str) -> None:
    r = post(client, referral_id, agency, **body)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert publisher.sent == []
    assert "Zq9mark" not in r.text


def test_the_body_follows_the_wire_types_and_may_be_a_referral_response_as_it_is(
        client: TestClient, publisher: FakePublisher) -> None:
    """The published schema of the body (schemas/json/answer_request.schema.json): strict types,
    one UUID form, schema_version; a console may post its `ReferralResponse` as it is."""
    for body, field in (({"answer": "acknowledged", "response_id": str(uuid.uuid4()).upper()}, "response_id"),
                        ({"answer": "acknowledged", "exercise": "true"}, "exercise"),
                        ({"answer": "acknowledged", "responded_at": "2026-11-20 08:00"}, "responded_at")):
        r = post(client, ALERT, **body)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_answer"), r.text
        assert [f["field"] for f in r.json()["error"]["fields"]] == [field]
    r = post(client, ALERT, answer="acknowledged", schema_version="2.0")
    assert (r.status_code, r.json()["error"]["code"]) == (422, "unsupported_schema_version"), r.text
    assert publisher.sent == []
    response = ReferralResponse(referral_id=uuid.UUID(ALERT), answer="acknowledged", agency=CENTRE, officer="王明")
    r = client.post(f"/v1/referrals/{ALERT}/answers", content=response.model_dump_json().encode(),
                    headers={"Content-Type": "application/json", **auth(CENTRE)})
    assert r.status_code == 202, r.text
    assert [a.response_id for a in answers(publisher)] == [response.response_id]


def test_a_body_that_is_not_json_and_a_path_that_is_not_an_id(client: TestClient) -> None:
    r = client.post(f"/v1/referrals/{ALERT}/answers", content=b"ACK",
                    headers={"Content-Type": "application/json", **auth(CENTRE)})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_json")
    r = post(client, "Zq9mark-not-an-id", answer="acknowledged")
    assert r.status_code == 422 and "Zq9mark" not in r.text
    # One UUID form (docs/wire-format.md): the path's id too, as the body's.
    for other_form in (ALERT.upper(), ALERT.replace("-", ""), f"{{{ALERT}}}"):
        r = post(client, other_form, answer="acknowledged")
        assert r.status_code == 422, (other_form, r.text)
        assert r.json()["error"]["fields"][0]["field"] == "path.referral_id"
    r = client.post(f"/v1/referrals/{ALERT}/answers", content=b"{}", headers=auth(CENTRE))
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media_type")
    assert client.post(f"/v1/referrals/{ALERT}/answers", content=b"{}",
                       headers={"Content-Type": "application/json"}).status_code == 401


def test_the_same_response_id_again_returns_the_first_answer(client: TestClient, publisher: FakePublisher) -> None:
    response_id = str(uuid.uuid4())
    first = post(client, ALERT, answer="acknowledged", response_id=response_id)
    again = post(client, ALERT, answer="acknowledged", response_id=response_id)
    assert first.status_code == again.status_code == 202 and first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(answers(publisher)) == 1
    other = post(client, ALERT, answer="accepted", response_id=response_id)
    assert (other.status_code, other.json()["error"]["code"]) == (409, "response_id_conflict")
    elsewhere = post(client, ALERT, "anti_trafficking_office", answer="acknowledged", response_id=response_id)
    assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (409, "response_id_conflict")


def test_broker_down_is_503_and_nothing_is_remembered(client: TestClient, publisher: FakePublisher) -> None:
    publisher.down = True
    response_id = str(uuid.uuid4())
    r = post(client, ALERT, answer="acknowledged", response_id=response_id)
    assert (r.status_code, r.json()["error"]["code"]) == (503, "broker_unavailable") and r.headers["Retry-After"]
    publisher.down = False
    assert post(client, ALERT, answer="acknowledged", response_id=response_id).status_code == 202


def test_a_retry_of_an_answer_whose_publish_timed_out_is_sent_again_even_once_applied(
        client: TestClient, publisher: FakePublisher, store: IntakeStore) -> None:
    """The broker may have taken an answer whose publish timed out, and the alerts service applied
    it: the retry is not refused as changing nothing (its copy is dropped by response_id there)."""
    publisher.down = True
    response_id = str(uuid.uuid4())
    assert post(client, OFFICE_ONLY, "anti_trafficking_office", answer="done", note="placed",
                response_id=response_id).status_code == 503
    store.apply_duties(0, [(4, Duty(OFFICE_ONLY, EVENT, "referral", "done", frozenset({"anti_trafficking_office"}),
                                    None))])
    publisher.down = False
    r = post(client, OFFICE_ONLY, "anti_trafficking_office", answer="done", note="placed", response_id=response_id)
    assert r.status_code == 202, r.text
    # Another answer, or one refused before, is still refused.
    assert post(client, OFFICE_ONLY, "anti_trafficking_office", answer="done", note="again").status_code == 409
    refused_id = str(uuid.uuid4())
    assert post(client, DONE, "civil_affairs", answer="done", note="x", response_id=refused_id).status_code == 409
    assert post(client, DONE, "civil_affairs", answer="done", note="x", response_id=refused_id).status_code == 409


def test_without_the_states_the_endpoint_knows_no_id(publisher: FakePublisher, tmp_path: Path) -> None:
    app = create_app(IntakeSettings(consume_receipts=False), KafkaSettings(), StateSettings(state_dir=tmp_path),
                     publisher=publisher, registry=CollectorRegistry())
    with TestClient(app) as c:
        r = post(c, ALERT, answer="acknowledged")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_id")
