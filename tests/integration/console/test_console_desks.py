"""Two desks of one command centre on the real bus: a missing-child report published through the
intake reaches both boards with a sound cue; one desk acknowledges, both show it, the escalation
does not fire; an unentitled agency sees no card and cannot answer it; the child is found and a
desk closes the case (issue #21)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bus.kafka.reader import read_all
from bus.local_broker import LocalBroker
from bus.settings import KafkaSettings
from schemas.alerts import CaseChange, Escalation, ReferralResponse, alert_id_for
from services.console.demo import demo_password
from services.intake.demo import DEMO_TOKENS
from topics.catalog import CASES, ESCALATIONS, RESPONSES

from ..alerts.alerts_helpers import states
from .conftest import SHORT_DEADLINES, keep_screenshot, off_loop, wait_js

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CST = dt.timezone(dt.timedelta(hours=8))


def missing_child(place: str = "西安北站东广场", lat: float = 34.3776, lon: float = 108.9393) -> dict[str, Any]:
    now = dt.datetime.now(CST)
    seen = now - dt.timedelta(minutes=40)
    return {
        "event_id": str(uuid.uuid4()), "kind": "child_missing_reported", "jurisdiction": "xian",
        "occurred_at": seen.isoformat(), "reported_at": now.isoformat(),
        "reporter": {"agency": "police", "role": "public"},
        "person": {"age": 6, "sex": "female", "name": "张小花", "distinguishing_features": "左脸颊有一颗小痣"},
        "last_seen_at": seen.isoformat(), "last_seen_location": {"place": place, "lat": lat, "lon": lon},
        "description": "穿红色羽绒服、蓝色牛仔裤，扎两个小辫，与母亲在候车时走失。",
    }


def release(report: dict[str, Any]) -> dict[str, Any]:
    now = dt.datetime.now(CST)
    return {"event_id": str(uuid.uuid4()), "kind": "missing_child_info_release", "jurisdiction": "xian",
            "occurred_at": now.isoformat(), "reported_at": now.isoformat(),
            "reporter": {"agency": "police", "role": "public"}, "case_id": report["event_id"],
            "guardian_consent": True, "public_contact": "110 / 029-86868686"}


def publish(intake: str, event: dict[str, Any], agency: str = "police") -> None:
    r = httpx.post(f"{intake}/v1/events", content=json.dumps(event, ensure_ascii=False).encode(),
                   headers={"Authorization": f"Bearer {DEMO_TOKENS[agency]}", "Content-Type": "application/json"},
                   timeout=30)
    assert r.status_code == 202, r.text


def desk(browser: Any, console: str, officer: str) -> Any:
    """A signed-in board in its own browser context (its own cookies: its own desk)."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN").new_page()
    page.goto(f"{console}/login")
    page.fill("#form-officer input[name=officer]", officer)
    page.fill("#form-officer input[name=password]", demo_password(officer))
    page.click("#form-officer button[type=submit]")
    page.wait_for_url("**/board")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    return page


def card(page: Any, alert_id: uuid.UUID) -> Any:
    return page.locator(f'#cards article[data-id="{alert_id}"]')


def _read(kafka: KafkaSettings, topic: str) -> list[bytes]:
    return [r.value for r in asyncio.run(read_all(kafka, [topic])) if r.value is not None]


def test_two_desks_one_acknowledges_unentitled_agency_sees_nothing(
        kafka: KafkaSettings, spawn: Callable[..., Any], intake: str, console: str, browser: Any,
        tmp_path: Path) -> None:
    short = {"REFERRAL_BUS_ALERTS_DEADLINES_FILE": str(SHORT_DEADLINES)}
    spawn("router", env=short)
    spawn("alerts", env={**short, "REFERRAL_BUS_ALERTS_LAG_INTERVAL": "0"})
    spawn("broadcast", env={"REFERRAL_BUS_BROADCAST_HTTP_PORT": "0"})
    wang, li = desk(browser, console, "cc-wang"), desk(browser, console, "cc-li")
    chen = desk(browser, console, "edu-chen")  # education: not addressed by a missing-child alert

    acked, ignored = missing_child(), missing_child(place="西安钟楼", lat=34.2610, lon=108.9423)
    publish(intake, acked)
    alert = alert_id_for(uuid.UUID(acked["event_id"]))
    for page in (wang, li):
        card(page, alert).wait_for(timeout=60_000)
        wait_js(page, "window.rbCues >= 1")
        text = card(page, alert).inner_text()
        assert "6岁" in text and "女" in text and "西安北站东广场" in text and "红色羽绒服" in text
        assert "XIAN-" in text  # the short reference beside the id
        assert card(page, alert).locator(".countdown").count() == 1
        assert card(page, alert).locator("svg.map circle.point").count() == 1

    # The unentitled agency: no card, no row, and an answer is refused as if the alert did not exist.
    assert chen.locator("#cards article").count() == 0
    assert chen.locator(f'#rows tr[data-id="{alert}"]').count() == 0
    refused = chen.evaluate(
        """async (id) => {
             const r = await fetch('/api/answers', {method: 'POST', credentials: 'same-origin',
               headers: {'Content-Type': 'application/json', 'X-CSRF-Token': window.RB_ME.csrf},
               body: JSON.stringify({id, answer: 'acknowledged'})});
             return r.status;
           }""", str(alert))
    assert refused == 404
    # Without the CSRF token even the entitled desk cannot answer.
    no_csrf = wang.evaluate(
        """async (id) => (await fetch('/api/answers', {method: 'POST', credentials: 'same-origin',
             headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({id, answer: 'acknowledged'})})).status""",
        str(alert))
    assert no_csrf == 403

    # The second alert is left unanswered: it is re-sent, on the same card, with a new cue.
    publish(intake, ignored)
    other = alert_id_for(uuid.UUID(ignored["event_id"]))
    card(wang, other).wait_for(timeout=60_000)
    wait_js(wang, "window.rbCues >= 2")

    # One desk acknowledges; both show it (once the bus recorded it), with the officer's name.
    card(wang, alert).locator('button[data-answer="acknowledged"]').click()
    for page in (wang, li):
        card(page, alert).locator(".badge.status-acknowledged").first.wait_for(timeout=30_000)
        assert "王明" in card(page, alert).locator(".answered").inner_text()
    assert card(chen, alert).count() == 0

    # The unanswered one was re-sent (the same card says so on both desks; the ladder works) ...
    for page in (wang, li):
        wait_js(page, f"document.querySelector('#cards article[data-id=\"{other}\"] .escalation') !== null", 60)
    wait_js(li, "window.rbCues >= 3")  # two new alerts, one re-send
    assert wang.locator(f'#cards article[data-id="{other}"]').count() == 1  # updated, not a second card
    # ... while the acknowledged one never was: its deadline passed long ago (15 s).
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    while dt.datetime.now(dt.UTC) < deadline:
        time.sleep(0.5)
    escalations = [Escalation.model_validate_json(r) for r in off_loop(_read, kafka, ESCALATIONS.name)]
    assert {e.referral_id for e in escalations} == {other}
    state = off_loop(states, kafka)[str(alert)]
    assert state.status == "acknowledged" and state.level == 0 and state.step == 0
    [entry] = [h for h in state.history if h.what == "acknowledged"]
    assert (entry.by, entry.officer) == ("police.command_center", "王明 (cc-wang)")
    answers = [ReferralResponse.model_validate_json(r) for r in off_loop(_read, kafka, RESPONSES.name)]
    assert [(a.referral_id, a.agency, a.officer) for a in answers] == [
        (alert, "police.command_center", "王明 (cc-wang)")]

    # The police release the broadcast with the guardian's consent: the card draws its circle.
    publish(intake, release(acked))
    card(li, alert).locator("svg.map circle.ring.current").wait_for(timeout=60_000)
    assert "100 km" in card(li, alert).locator("figure.map-box").inner_text()

    board_shot, card_shot = tmp_path / "console-board.png", tmp_path / "console-card.png"
    li.screenshot(path=str(board_shot), full_page=False)
    card(li, alert).screenshot(path=str(card_shot))
    keep_screenshot(board_shot, "console-board.png")
    keep_screenshot(card_shot, "console-card.png")

    # The child is found: one desk closes the case (the police's resolution, through the bus); both
    # desks show it closed, and the alerts service recorded who closed it and how.
    card(li, alert).locator("button[data-close-case]").click()
    li.select_option("#close-outcome", "found_alive")
    li.fill("#close-note", "在西安北站派出所找到，已交还监护人")
    li.click("#close-form button[type=submit]")
    for page in (wang, li):
        card(page, alert).locator(".card-head .badge.status-closed", has_text="案件已结").wait_for(timeout=60_000)
        assert card(page, alert).locator("button[data-close-case]").count() == 0
    [closed] = [c for c in (CaseChange.model_validate_json(r) for r in off_loop(_read, kafka, CASES.name))
                if c.case_id == uuid.UUID(acked["event_id"]) and c.status == "closed"]
    assert closed.outcome == "found_alive" and closed.closed_by is not None


def test_an_answer_made_while_the_broker_is_unreachable_is_queued_and_sent_when_it_returns(
        kafka: KafkaSettings, broker: LocalBroker, spawn: Callable[..., Any], intake: str, console: str,
        browser: Any) -> None:
    spawn("router")
    spawn("alerts", env={"REFERRAL_BUS_ALERTS_LAG_INTERVAL": "0"})
    wang = desk(browser, console, "cc-wang")
    report = missing_child()
    publish(intake, report)
    alert = alert_id_for(uuid.UUID(report["event_id"]))
    card(wang, alert).wait_for(timeout=60_000)

    assert broker.process is not None
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        card(wang, alert).locator('button[data-answer="acknowledged"]').click()
        queued = card(wang, alert).locator(".pending-queued")
        queued.wait_for(timeout=30_000)
        assert "排队" in queued.inner_text()
        assert "连接中断" in wang.locator("#banner").inner_text()
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    card(wang, alert).locator(".badge.status-acknowledged").first.wait_for(timeout=60_000)
    wait_js(wang, "document.getElementById('banner').hidden === true", 30)
    answers = [ReferralResponse.model_validate_json(r) for r in off_loop(_read, kafka, RESPONSES.name)]
    assert {(a.referral_id, a.officer) for a in answers} == {(alert, "王明 (cc-wang)")}
