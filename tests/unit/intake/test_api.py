"""The intake's HTTP contract, with a fake broker: who may publish what, and every refusal's shape."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from bus.settings import KafkaSettings, StateSettings
from schemas.receipts import Receipt
from services.intake.app import OPENAPI_PATH, create_app, openapi_document
from services.intake.settings import IntakeSettings
from tests.unit.intake.intake_fakes import HOSPITAL, FakePublisher, app_of, auth, body, hospital_event
from topics.catalog import AUDIT, EVENTS

JSON = {"Content-Type": "application/json"}


def post(client: TestClient, event: dict[str, object], agency: str = HOSPITAL) -> Any:
    # What the test client answers: untyped here (starlette's testclient types it through httpx2).
    return client.post("/v1/events", content=body(event), headers={**JSON, **auth(agency)})


def test_hospital_publishes_with_its_token(client: TestClient, publisher: FakePublisher) -> None:
    event = hospital_event()
    r = client.post("/v1/events", content=body(event), headers={**JSON, **auth()})
    assert r.status_code == 202
    answer = r.json()
    assert answer["event_id"] == event["event_id"]
    assert answer["status"] == "accepted" and answer["agency"] == HOSPITAL
    assert answer["receipt_url"] == f"/v1/events/{event['event_id']}"
    # The original bytes go to the inbound topic (the router validates exactly what was sent).
    assert publisher.on(EVENTS.name) == [body(event)]
    [audit] = [json.loads(v) for v in publisher.on(AUDIT.name)]
    assert audit["action"] == "published" and audit["actor"] == HOSPITAL
    assert "刘招娣" not in json.dumps(audit, ensure_ascii=False)


def test_same_event_id_returns_original_and_publishes_nothing(client: TestClient,
                                                              publisher: FakePublisher) -> None:
    event = hospital_event()
    first = client.post("/v1/events", content=body(event), headers={**JSON, **auth()})
    again = client.post("/v1/events", content=body(event), headers={**JSON, **auth()})
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(publisher.on(EVENTS.name)) == 1


def test_reused_event_id_with_other_content_is_a_conflict(client: TestClient) -> None:
    event = hospital_event()
    assert client.post("/v1/events", content=body(event), headers={**JSON, **auth()}).status_code == 202
    r = client.post("/v1/events", content=body({**event, "description": "changed"}), headers={**JSON, **auth()})
    assert r.status_code == 409 and r.json()["error"]["code"] == "event_id_conflict"


def test_cannot_publish_as_another_agency(client: TestClient, publisher: FakePublisher) -> None:
    event = hospital_event()
    r = client.post("/v1/events", content=body(event), headers={**JSON, **auth("education")})
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "agency_mismatch"
    assert err["fields"] == [{"field": "reporter.agency", "reason": "not the authenticated agency"}]
    assert publisher.sent == []


def test_public_reporter_needs_an_agency_at_the_intake(client: TestClient) -> None:
    r = post(client, hospital_event(reporter={"agency": None, "role": "public"}))
    assert r.status_code == 403


def _release(agency: str) -> dict[str, object]:
    return hospital_event(kind="missing_child_info_release", jurisdiction="xian", case_id=str(uuid.uuid4()),
                          guardian_consent=True, public_contact="110",
                          reporter={"agency": agency, "role": "public"})


def test_only_police_may_release_a_broadcast(client: TestClient, publisher: FakePublisher) -> None:
    r = post(client, _release(HOSPITAL))
    assert r.status_code == 403 and r.json()["error"]["code"] == "kind_not_permitted"
    r = post(client, _release("police.command_center"), agency="police.command_center")
    assert r.status_code == 202


def test_only_police_may_resolve_a_case(client: TestClient) -> None:
    resolution = hospital_event(kind="case_resolved", case_id=str(uuid.uuid4()), outcome="found_alive")
    r = post(client, resolution)
    assert r.status_code == 403
    r = post(client, {**resolution, "reporter": {"agency": "police", "role": "public"}}, agency="police")
    assert r.status_code == 202


def test_missing_or_wrong_token_is_401(client: TestClient, publisher: FakePublisher) -> None:
    for headers in ({}, {"Authorization": "Bearer rb_hospital_not-the-right-secret"},
                    {"Authorization": "Basic abc"}):
        r = client.post("/v1/events", content=body(hospital_event()), headers={**JSON, **headers})
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthenticated"
    assert publisher.sent == []


def test_invalid_event_names_each_field_and_reason(client: TestClient) -> None:
    bad = hospital_event(jurisdiction="atlantis")
    bad["person"] = {"age": -3, "nationality": "China"}
    r = post(client, bad)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_event"
    fields = {f["field"] for f in err["fields"]}
    assert {"jurisdiction", "person.age"} <= fields
    # Reasons never echo the value sent (it may be personal data).
    assert "atlantis" not in json.dumps(err["fields"]) or "known:" in json.dumps(err["fields"])


def test_reasons_do_not_echo_personal_values(client: TestClient) -> None:
    bad = hospital_event()
    bad["person"] = {"name": "张宝宝" * 100, "age": 3}
    r = post(client, bad)
    assert r.status_code == 422 and "张宝宝" not in r.text


def test_not_json_is_422(client: TestClient) -> None:
    r = client.post("/v1/events", content=b"{not json", headers={**JSON, **auth()})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_json"


def test_wrong_content_type_is_415(client: TestClient) -> None:
    r = client.post("/v1/events", content=body(hospital_event()),
                    headers={"Content-Type": "text/plain", **auth()})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"


def test_oversized_body_is_413(client: TestClient) -> None:
    big = b"{" + b" " * 9000 + b"}"
    r = client.post("/v1/events", content=big, headers={**JSON, **auth()})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunks() -> object:  # no Content-Length: the limit holds while streaming
        for _ in range(10):
            yield b" " * 1000

    r = client.post("/v1/events", content=chunks(), headers={**JSON, **auth()})
    assert r.status_code == 413


def test_broker_down_is_503_with_retry_after_then_accepted(client: TestClient, publisher: FakePublisher) -> None:
    event = hospital_event()
    publisher.down = True
    r = post(client, event)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"
    assert r.json()["error"]["code"] == "broker_unavailable"
    publisher.down = False
    r = post(client, event)  # not remembered as accepted: the retry publishes it
    assert r.status_code == 202
    assert len(publisher.on(EVENTS.name)) == 1


def test_receipt_is_for_the_reporter_only(client: TestClient) -> None:
    event = hospital_event()
    post(client, event)
    url = f"/v1/events/{event['event_id']}"
    r = client.get(url, headers=auth())
    assert r.status_code == 200 and r.json()["status"] == "accepted" and r.json()["receipt"] is None
    assert client.get(url, headers=auth("education")).status_code == 404
    assert client.get(f"/v1/events/{uuid.uuid4()}", headers=auth()).status_code == 404
    assert client.get("/v1/events/not-a-uuid", headers=auth()).json()["error"]["code"] == "invalid_request"


def test_receipt_shows_routing(client: TestClient) -> None:
    event = hospital_event()
    post(client, event)
    store = app_of(client).state.intake.store
    store.put_receipt(Receipt(event_id=event["event_id"], status="routed", reporter_agency=HOSPITAL,
                              issued_at=dt.datetime.now(dt.UTC)))
    r = client.get(f"/v1/events/{event['event_id']}", headers=auth())
    assert r.json()["status"] == "routed" and r.json()["receipt"]["status"] == "routed"


def test_unknown_route_uses_the_error_format(client: TestClient) -> None:
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_metrics_carry_codes_only(publisher: FakePublisher, settings: IntakeSettings, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    app = create_app(settings, KafkaSettings(), StateSettings(state_dir=tmp_path), publisher=publisher,
                     registry=registry)
    with TestClient(app) as client:
        post(client, hospital_event())
        # Not on the API's port (which may face the internet): `run()` serves them on a
        # listener of their own, on loopback unless configured.
        assert client.get("/metrics").status_code == 404
    text = generate_latest(registry).decode()
    assert 'referral_bus_intake_published_total{agency="health.designated_medical_institution"} 1.0' in text
    assert "刘招娣" not in text


def test_openapi_document_is_checked_in(client: TestClient) -> None:
    """Regenerate with `referral-bus intake --openapi services/intake/openapi.json`."""
    assert Path(OPENAPI_PATH).read_text(encoding="utf-8") == openapi_document(app_of(client))


def test_regression_unhashable_kind_is_422_not_500(client: TestClient) -> None:
    """Found by hypothesis: `"kind": []` raised TypeError in the union's discriminator (router too)."""
    kind: object
    for kind in ([], {}, [1]):
        r = post(client, hospital_event(kind=kind))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["fields"][0]["field"] == "kind"
