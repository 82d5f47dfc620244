"""Closing a case at a desk: only the police, only a case the desk sees, published as the police's
`case_resolved` on the bus (which decides), once per case and outcome, never lost silently."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from bus.boundary import EVENT
from bus.kafka.publisher import BrokerUnavailable, Written
from bus.settings import KafkaSettings, StateSettings
from schemas.events import CaseResolution
from services.console.app import create_app
from services.console.demo import demo_password
from services.console.routes import ConsoleContext
from services.console.settings import ConsoleSettings
from topics.catalog import AUDIT, EVENTS

from .console_fakes import alert_pair, case_of, escalated
from .test_routes import Sink


class Broker:
    def __init__(self) -> None:
        self.written: list[tuple[str, bytes, bytes]] = []
        self.up = True
        self.closed = 0

    async def publish(self, topic: str, key: bytes, value: bytes) -> Written:
        if not self.up:
            raise BrokerUnavailable("KafkaConnectionError")
        self.written.append((topic, key, value))
        return Written(0, len(self.written) - 1)

    async def close(self) -> None:
        self.closed += 1


Setup = tuple[TestClient, ConsoleContext, Broker]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    broker = Broker()
    app = create_app(ConsoleSettings(), KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=""),
                     StateSettings(state_dir=tmp_path), registry=CollectorRegistry(), sink=Sink(),
                     closer=broker, read_bus=False)
    ctx: ConsoleContext = app.state.console
    ctx.reader.ready.set()
    with TestClient(app) as client:
        yield client, ctx, broker


def sign_in(client: TestClient, officer: str) -> dict[str, str]:
    r = client.post("/api/sign-in", json={"officer": officer, "password": demo_password(officer)})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf"]}


def card(client: TestClient) -> dict[str, Any]:
    [item] = client.get("/api/board").json()["items"]
    found: dict[str, Any] = item["card"]
    return found


def test_the_command_centre_closes_its_case_with_the_polices_resolution(setup: Setup) -> None:
    client, ctx, broker = setup
    alert, lead = alert_pair()
    for state in (alert, lead):
        ctx.reader.bus.put_state(state)
    ctx.reader.bus.cases[str(alert.case_id)] = case_of(alert)
    url = f"/api/cases/{alert.case_id}/resolve"
    assert client.post(url, json={"outcome": "found_alive"}).status_code == 401
    csrf = sign_in(client, "cc-wang")
    assert card(client)["may_close"] is True
    r = client.post(url, json={"outcome": "found_alive", "note": "在西安北站派出所找到"}, headers=csrf)
    assert r.status_code == 202, r.text
    [(topic, key, value), (audit_topic, _, audit)] = broker.written
    assert (topic, audit_topic) == (EVENTS.name, AUDIT.name)
    assert key == str(alert.case_id).encode()  # a case's events share a partition
    event = EVENT.decode(value)  # what the router reads: it passes the trust boundary
    assert isinstance(event, CaseResolution)
    assert (event.case_id, event.outcome, event.jurisdiction) == (alert.case_id, "found_alive", "xian")
    assert event.reporter.agency == "police.command_center" and "王明" in event.description
    assert str(event.event_id) == r.json()["event_id"]
    assert json.loads(audit)["event_id"] == str(event.event_id) and "王明" not in audit.decode()
    # A second click (or a second desk) closing the same way publishes the same event.
    again = client.post(url, json={"outcome": "found_alive"}, headers=csrf)
    assert again.json()["event_id"] == r.json()["event_id"]
    ctx.reader.bus.cases[str(alert.case_id)] = case_of(alert).model_copy(update={"status": "closed"})
    assert card(client)["may_close"] is False
    closed = client.post(url, json={"outcome": "found_alive"}, headers=csrf)
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "already_closed"


def test_only_the_police_close_and_only_a_case_the_desk_sees(setup: Setup) -> None:
    client, ctx, broker = setup
    alert, lead = alert_pair()
    ctx.reader.bus.put_state(escalated(alert))  # the joint office sees the card once escalated to it
    ctx.reader.bus.put_state(lead)
    ctx.reader.bus.cases[str(alert.case_id)] = case_of(alert)
    url = f"/api/cases/{alert.case_id}/resolve"
    csrf = sign_in(client, "edu-chen")
    r = client.post(url, json={"outcome": "found_alive"}, headers=csrf)
    assert r.status_code == 404 and "found_alive" not in r.text
    csrf = sign_in(client, "ato-zhao")
    assert card(client)["may_close"] is False
    r = client.post(url, json={"outcome": "found_alive"}, headers=csrf)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_police"
    csrf = sign_in(client, "cc-wang")
    r = client.post(url, json={"outcome": "home_by_himself"}, headers=csrf)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "outcome"
    assert client.post(f"/api/cases/{lead.id}/resolve", json={"outcome": "found_alive"},
                       headers=csrf).status_code == 404
    assert broker.written == []


def test_a_resolution_the_bus_cannot_take_is_refused_aloud_not_lost(setup: Setup) -> None:
    client, ctx, broker = setup
    alert, lead = alert_pair()
    for state in (alert, lead):
        ctx.reader.bus.put_state(state)
    ctx.reader.bus.cases[str(alert.case_id)] = case_of(alert)
    csrf = sign_in(client, "cc-li")
    broker.up = False
    r = client.post(f"/api/cases/{alert.case_id}/resolve", json={"outcome": "closed_other"}, headers=csrf)
    assert r.status_code == 503 and r.json()["error"]["code"] == "bus_unreachable"
    assert broker.closed >= 1  # a fresh producer next time
    assert ctx.metrics.case_closings.labels("unavailable")._value.get() == 1
    broker.up = True
    r = client.post(f"/api/cases/{alert.case_id}/resolve", json={"outcome": "closed_other"}, headers=csrf)
    assert r.status_code == 202
