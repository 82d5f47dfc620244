"""The console's HTTP surface with fakes (no broker): sign-in, CSRF, entitlement, answers, receipts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from bus.presentation import receipt_view
from bus.settings import KafkaSettings, StateSettings
from schemas.alerts import ReferralResponse
from services.console.app import create_app
from services.console.auth import Session
from services.console.demo import demo_password
from services.console.routes import ConsoleContext
from services.console.settings import ConsoleSettings

from .console_fakes import alert_pair


class Sink:
    def __init__(self) -> None:
        self.delivered: list[ReferralResponse] = []

    async def deliver(self, response: ReferralResponse) -> None:
        self.delivered.append(response)

    async def close(self) -> None:
        return None


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, ConsoleContext, Sink]]:
    sink = Sink()
    app = create_app(ConsoleSettings(), KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=""),
                     StateSettings(state_dir=tmp_path), registry=CollectorRegistry(), sink=sink,
                     read_bus=False)
    ctx: ConsoleContext = app.state.console
    ctx.reader.ready.set()
    with TestClient(app) as client:
        yield client, ctx, sink


def sign_in(client: TestClient, officer: str) -> dict[str, Any]:
    r = client.post("/api/sign-in", json={"officer": officer, "password": demo_password(officer)})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_answers_need_a_session_its_csrf_token_and_an_entitled_agency(
        setup: tuple[TestClient, ConsoleContext, Sink]) -> None:
    client, ctx, sink = setup
    alert, lead = alert_pair()
    ctx.reader.bus.put_state(alert)
    ctx.reader.bus.put_state(lead)
    body = {"id": str(alert.id), "answer": "acknowledged"}
    assert client.post("/api/answers", json=body).status_code == 401
    me = sign_in(client, "edu-chen")
    assert client.post("/api/answers", json=body).status_code == 403  # no CSRF token
    assert client.post("/api/answers", json=body, headers={"X-CSRF-Token": me["csrf"]}).status_code == 404
    assert client.get("/api/board").json()["items"] == []
    me = sign_in(client, "cc-wang")
    csrf = {"X-CSRF-Token": me["csrf"]}
    r = client.post("/api/answers", json=body, headers=csrf)
    assert r.status_code == 202 and r.json()["outcome"] == "published"
    [sent] = sink.delivered
    assert (sent.referral_id, sent.agency, sent.officer) == (alert.id, "police.command_center", "王明 (cc-wang)")
    [item] = client.get("/api/board").json()["items"]
    assert item["card"]["pending"][0]["status"] == "sending"  # until alerts.states records it
    r = client.post("/api/answers", json={"id": str(alert.id), "answer": "rejected", "reason": "  "}, headers=csrf)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "reason"
    done = alert.model_copy(update={"status": "done"})
    ctx.reader.bus.put_state(done)
    r = client.post("/api/answers", json=body, headers=csrf)
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_answerable"
    form = {**csrf, "Content-Type": "application/x-www-form-urlencoded"}
    r = client.post("/api/answers", content=b"id=1", headers=form)
    assert r.status_code == 415


def test_sign_in_refusal_pages_and_headers(setup: tuple[TestClient, ConsoleContext, Sink]) -> None:
    client, _, _ = setup
    assert client.post("/api/sign-in", json={"officer": "cc-wang", "password": "nope"}).status_code == 401
    assert client.get("/board", follow_redirects=False).headers["location"] == "/login?next=/board"
    page = client.get("/report")
    assert page.status_code == 200 and "线索上报" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    sign_in(client, "cc-li")
    cookie = client.cookies.get("rb_console")
    assert cookie and client.get("/board").status_code == 200
    names = client.get("/api/catalog").json()
    assert names["agencies"]["police.command_center"]["zh"] == "公安机关指挥中心"
    assert names["jurisdictions"]["xian"]["offset"] == "+08:00" and names["urgency"]["immediate"]["zh"] == "迅速"


def test_every_asset_is_served_by_the_console_itself(setup: tuple[TestClient, ConsoleContext, Sink]) -> None:
    client, _, _ = setup
    static = Path(__file__).parents[3] / "services" / "console" / "static"
    for page in static.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, page.name
    for name in ("app.css", "i18n.js", "board.js", "map.js", "report.js", "login.js"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/sw.js").headers["service-worker-allowed"] == "/"


def test_a_receipt_names_the_plan_by_title_and_times_in_local_time() -> None:
    status = {"event_id": "6f1c2a4e-8d2b-4c4e-9f61-0c1d2e3f4a5b", "status": "routed", "receipt": {
        "event_id": "6f1c2a4e-8d2b-4c4e-9f61-0c1d2e3f4a5b", "status": "routed", "jurisdiction": "xian",
        "routed_to": [{"agency": "police", "role": "lead", "referral_id": "6f1c2a4e-8d2b-4c4e-9f61-0c1d2e3f4a5c",
                       "rule_id": "r", "clause": "第八条", "file": "001_56bdd0a940e471fd.txt", "urgency": "immediate",
                       "ack_by": "2026-11-20T00:05:00+00:00", "due_by": None}],
        "issued_at": "2026-11-20T00:00:01+00:00"}}
    view = receipt_view(status)
    [told] = view["routed_to"]
    assert told["plan"] == "西安市贯彻落实《中国反对拐卖人口行动计划(2021—2030年)》实施细则"
    assert told["ack_by"]["text"] == "2026-11-20 08:05:00" and told["due_by"] is None
    assert view["ref"].startswith("XIAN-")
    refused = receipt_view({"event_id": "x", "status": "refused", "receipt": {
        "refusal_reason": "invalid_event", "refusal_errors": [{"field": "person.age", "reason": "too old"}]}})
    assert refused["refusal"] == {"reason": "invalid_event", "fields": [{"field": "person.age", "reason": "too old"}]}


def test_password_guessing_is_throttled_per_officer_without_locking_out_others(
        setup: tuple[TestClient, ConsoleContext, Sink]) -> None:
    client, ctx, _ = setup
    checks: list[str] = []
    real_check = ctx.sessions.sign_in_officer

    def counted(officer_id: str, password: str) -> Session:
        checks.append(officer_id)
        return real_check(officer_id, password)

    ctx.sessions.sign_in_officer = counted  # type: ignore[method-assign]
    guesses = [client.post("/api/sign-in", json={"officer": "cc-wang", "password": f"guess-{i}"}) for i in range(8)]
    assert [r.status_code for r in guesses] == [401] * 5 + [429] * 3
    assert checks == ["cc-wang"] * 5  # a throttled guess costs no password check
    throttled = guesses[-1]
    assert throttled.json()["error"]["code"] == "too_many_attempts"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert "guess" not in throttled.text
    # Even the right password waits for the window: a guesser cannot tell it found it.
    r = client.post("/api/sign-in", json={"officer": "cc-wang", "password": demo_password("cc-wang")})
    assert r.status_code == 429
    sign_in(client, "cc-li")  # another officer at the same address signs in
    metric = ctx.metrics.sign_ins.labels("throttled")._value.get()
    assert metric == 4
