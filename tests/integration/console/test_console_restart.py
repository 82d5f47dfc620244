"""A restarted console keeps its officers signed in: the real console process on the real bus,
stopped with SIGTERM (a deploy) and killed with SIGKILL (a crash); the same cookie still reads the
board and answers an alert with the CSRF token the page already has. A reporter's token session
is not kept (the agency token is never written): the reporter signs in again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.alerts import alert_id_for
from services.console.demo import demo_password
from services.intake.demo import DEMO_TOKENS

from ..conftest import Service, healthy, start_http_service, wait_for
from .test_console_desks import card, desk, missing_child, publish

pytestmark = pytest.mark.integration


@pytest.fixture
def console_process(spawn: Callable[..., Any], intake: str) -> tuple[str, Service]:
    return start_http_service(spawn, "console", "REFERRAL_BUS_CONSOLE_PORT", {
        "REFERRAL_BUS_CONSOLE_METRICS_PORT": "0", "REFERRAL_BUS_CONSOLE_INTAKE_URL": intake,
        "REFERRAL_BUS_CONSOLE_PUBLISH_TIMEOUT_S": "2"}, timeout=60)


def restart(url: str, console: Service, how: str) -> None:
    console.stop() if how == "SIGTERM" else console.kill()
    assert not healthy(url)
    console.start()
    wait_for(lambda: healthy(url), 60, f"the console back on {url}\n{console.log}")


def test_an_officers_cookie_survives_sigterm_and_sigkill_a_reporters_does_not(
        spawn: Callable[..., Any], intake: str, console_process: tuple[str, Service], tmp_path: Path) -> None:
    url, console = console_process
    spawn("router")
    spawn("alerts", env={"REFERRAL_BUS_ALERTS_LAG_INTERVAL": "0"})
    officer, reporter = httpx.Client(base_url=url, timeout=10), httpx.Client(base_url=url, timeout=10)
    r = officer.post("/api/sign-in", json={"officer": "cc-wang", "password": demo_password("cc-wang")})
    assert r.status_code == 200, r.text
    csrf, sid = r.json()["csrf"], officer.cookies["rb_console"]
    r = reporter.post("/api/sign-in", json={"token": DEMO_TOKENS["womens_federation"], "name": "刘芳"})
    assert r.status_code == 200 and r.json()["can_report"], r.text

    report = missing_child()
    publish(intake, report)
    alert = str(alert_id_for(uuid.UUID(report["event_id"])))

    def on_board() -> bool:
        r = officer.get("/api/board")
        assert r.status_code == 200, r.text
        return alert in {item["id"] for item in r.json()["items"]}

    wait_for(on_board, 60, "the alert on the board")

    restart(url, console, "SIGTERM")
    me = officer.get("/api/me")
    assert me.status_code == 200, me.text
    assert (me.json()["officer"], me.json()["csrf"]) == ("王明 (cc-wang)", csrf)
    wait_for(on_board, 60, "the alert on the board after SIGTERM")
    assert reporter.get("/api/me").status_code == 401  # signs in again

    restart(url, console, "SIGKILL")
    wait_for(on_board, 60, "the alert on the board after SIGKILL")
    r = officer.post("/api/answers", json={"id": alert, "answer": "acknowledged"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 202 and r.json()["outcome"] == "published", r.text

    files = b"".join(p.read_bytes() for p in (tmp_path / "state" / "console").glob("sessions.sqlite*"))
    assert files and sid.encode() not in files and DEMO_TOKENS["womens_federation"].encode() not in files

    # Signed out, the cookie is dead, and stays dead after another restart.
    assert officer.post("/api/sign-out", json={}, headers={"X-CSRF-Token": csrf}).status_code == 200
    restart(url, console, "SIGTERM")
    assert httpx.get(f"{url}/api/me", headers={"Cookie": f"rb_console={sid}"}).status_code == 401


@pytest.mark.browser
def test_a_desk_reloaded_after_a_restart_shows_the_board_not_the_sign_in_page(
        intake: str, console_process: tuple[str, Service], browser: Any, spawn: Callable[..., Any]) -> None:
    url, console = console_process
    spawn("router")
    spawn("alerts", env={"REFERRAL_BUS_ALERTS_LAG_INTERVAL": "0"})
    page = desk(browser, url, "cc-li")
    restart(url, console, "SIGKILL")
    # The open page reconnects to the restarted console and still answers with its CSRF token.
    report = missing_child()
    publish(intake, report)
    alert = alert_id_for(uuid.UUID(report["event_id"]))
    card(page, alert).wait_for(timeout=60_000)
    card(page, alert).locator('button[data-answer="acknowledged"]').click()
    card(page, alert).locator(".badge.status-acknowledged").first.wait_for(timeout=30_000)
    page.reload()
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert page.url.endswith("/board")
    assert card(page, alert).count() == 1
