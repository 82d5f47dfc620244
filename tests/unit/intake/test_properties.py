"""Property tests: no input makes the intake answer 5xx, and every refusal is a clear 4xx.

schemathesis generates requests from the intake's own OpenAPI document; hypothesis generates
event-shaped JSON around a valid hospital event. The fake publisher stands in for the broker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from bus.settings import KafkaSettings, StateSettings
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.unit.intake.intake_fakes import HOSPITAL, FakePublisher, auth, body, hospital_event


def _app(tmp: Path) -> FastAPI:
    return create_app(IntakeSettings(consume_receipts=False, publish_timeout_s=0.5), KafkaSettings(),
                      StateSettings(state_dir=tmp), publisher=FakePublisher(), registry=CollectorRegistry())


@pytest.fixture(scope="module")
def module_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(_app(tmp_path_factory.mktemp("props"))) as c:
        yield c


def _assert_clear(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        err = response.json()["error"]
        assert err["code"] and err["message"]
        assert all(set(f) == {"field", "reason"} for f in err["fields"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELDS = [*hospital_event().keys(), "person.age", "person.nationality", "location.lat", "details", "extra"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=json_values, drop=st.booleans())
def test_mutated_events_never_5xx(module_client: TestClient, field: str, value: Any, drop: bool) -> None:
    event = hospital_event()
    head, _, tail = field.partition(".")
    target: dict[str, Any] = event[head] if tail and isinstance(event.get(head), dict) else event
    key = tail or head
    if drop:
        target.pop(key, None)
    else:
        target[key] = value
    r = module_client.post("/v1/events", content=body(event),
                           headers={"Content-Type": "application/json", **auth()})
    _assert_clear(r)
    assert r.status_code in (202, 403, 422)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_never_5xx(module_client: TestClient, raw: bytes) -> None:
    r = module_client.post("/v1/events", content=raw, headers={"Content-Type": "application/json", **auth()})
    _assert_clear(r)
    assert r.status_code == 422


schema: schemathesis.BaseSchema  # what exclude() answers
schema = schemathesis.openapi.from_asgi("/openapi.json", _app(Path("/tmp") / "referral-bus-schemathesis"))
# The referral stream needs a broker (it answers 503 without one, checked in test_api).
schema = schema.exclude(path="/v1/referrals/stream")
CALLS: dict[str, int] = {}


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_contract(case: schemathesis.Case[Any]) -> None:
    """Generated from the OpenAPI document, with and without a valid token: no 5xx, documented answers."""
    for headers in ({**auth()}, {}):
        response = case.call(headers=headers)
        CALLS[case.operation.label] = CALLS.get(case.operation.label, 0) + 1
        _assert_clear(response)
        # Schema-valid is not always valid: cross-field rules (reported after occurred, ISO
        # nationality, known codes per catalog) answer 422 by design, so that check is off.
        case.validate_response(response, excluded_checks=[schemathesis.checks.positive_data_acceptance])


def test_schemathesis_exercised_every_operation() -> None:
    """Runs after the contract test (file order): it really generated calls for each operation."""
    if not CALLS:
        pytest.skip("contract test not run in this session")
    assert set(CALLS) == {"POST /v1/events", "GET /v1/events/{event_id}",
                          "POST /v1/referrals/{referral_id}/answers"}, CALLS
    print(f"schemathesis calls: {CALLS}")


def test_reporter_fields_are_named_in_refusals(module_client: TestClient) -> None:
    event = hospital_event(reporter={"agency": HOSPITAL})
    r = module_client.post("/v1/events", content=json.dumps(event).encode(),
                           headers={"Content-Type": "application/json", **auth()})
    assert r.status_code == 422 and r.json()["error"]["fields"] == [
        {"field": "reporter.role", "reason": "Field required"}]
