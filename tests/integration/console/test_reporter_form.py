"""The reporter's form on the real bus: a report filled in while the device is offline stays on the
device, is delivered once when the network returns, and its receipt (who was told, under which
plan and article, by when) shows in the page, in Chinese (issue #21)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bus.kafka.reader import read_all
from bus.presentation import ROLES_ZH
from bus.settings import KafkaSettings
from rules.catalog import catalog
from rules.engine import load_rulebook, route
from schemas.events import parse_event
from services.intake.demo import DEMO_TOKENS
from topics.catalog import EVENTS

from ..conftest import CLI
from .conftest import keep_screenshot, off_loop, wait_js

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def inbound_ids(kafka: KafkaSettings) -> list[str]:
    records = asyncio.run(read_all(kafka, [EVENTS.name]))
    return [json.loads(r.value)["event_id"] for r in records if r.value]


def test_report_made_offline_is_delivered_once_with_its_receipt(
        kafka: KafkaSettings, spawn: Callable[..., Any], intake: str, console: str, browser: Any,
        tmp_path: Path) -> None:
    spawn("router")
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    page.goto(f"{console}/login?next=/report")
    page.fill("#form-token input[name=token]", DEMO_TOKENS["womens_federation"])
    page.fill("#form-token input[name=name]", "刘芳")
    page.click("#form-token button[type=submit]")
    page.wait_for_url("**/report")
    page.wait_for_selector("#kind option", state="attached")
    # The page is in the device's cache before the network goes (the service worker).
    wait_js(page, "navigator.serviceWorker.controller !== null || navigator.serviceWorker.ready.then(() => true)")
    page.reload()
    wait_js(page, "navigator.serviceWorker.controller !== null")

    context.set_offline(True)
    page.reload()  # offline: served by the service worker
    page.wait_for_selector("#kind option", state="attached")
    page.select_option("#kind", "womens_federation_finds_unknown_origin_person")
    page.select_option("#jurisdiction", "xx_city")
    page.fill("#place", "XX市某村村委会")
    page.fill("#age", "14")
    page.select_option("#sex", "female")
    page.select_option("#role", "womens_federation_cadre")
    page.fill("#description", "村里新来一名女孩，说不出家在哪里，由一男子看管，不让与人交谈。")
    page.click("#report-form button[type=submit]")
    wait_js(page, "document.body.dataset.queued === '1'")
    assert "没有网络" in page.locator("#network").inner_text()
    [queued] = page.evaluate("JSON.parse(localStorage.getItem('rb.reports.outbox'))")
    event_id = queued["event_id"]
    assert event_id not in off_loop(inbound_ids, kafka)

    context.set_offline(False)  # the page's `online` handler sends it
    wait_js(page, "document.body.dataset.sent === '1' && document.body.dataset.queued === '0'", 60)
    box = page.locator(f'.receipt[data-event-id="{event_id}"][data-status="routed"]')
    box.wait_for(timeout=60_000)
    text = box.inner_text()
    # Who was told is what the plan says (the rule engine, dry run), each with its role in Chinese.
    referrals = route(parse_event(queued["body"]), load_rulebook())
    told = [(catalog().agencies[r.agency].zh, ROLES_ZH[r.role]) for r in referrals]
    assert told and "已通知" in text
    for name, role in told:
        assert f"{name}（{role}）" in text
    assert "XX市贯彻中国反对拐卖人口行动计划实施细则" in text and "第" in text  # the plan's title and article
    assert "确认时限" in text and ".txt" not in text

    # Once: the network's return, a second flush and a reload send nothing more.
    page.evaluate("window.rbReporter.flush()")
    page.reload()
    page.wait_for_selector("#kind option", state="attached")
    assert off_loop(inbound_ids, kafka).count(event_id) == 1

    # The same receipt in the terminal.
    done = subprocess.run([CLI, "receipt", event_id, "--token", DEMO_TOKENS["womens_federation"], "--url", intake],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "已通知" in done.stdout and "确认时限" in done.stdout
    assert all(f"{name}（{role}）" in done.stdout for name, role in told)
    other = subprocess.run([CLI, "receipt", event_id, "--token", DEMO_TOKENS["police"], "--url", intake],
                           capture_output=True, text=True, timeout=60, check=False)
    assert other.returncode == 4  # another agency's event: not found for it

    shot = tmp_path / "console-report.png"
    page.screenshot(path=str(shot), full_page=True)
    keep_screenshot(shot, "console-report.png")
