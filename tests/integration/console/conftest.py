"""The console on the real broker, driven in Debian's chromium by Playwright (no browser download:
deploy/install-browser.sh installs chromium and a CJK font, as `make test` does)."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ..conftest import start_http_service, start_intake, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHORT_DEADLINES = Path(__file__).parents[1] / "alerts" / "deadlines-short.yaml"
REPO = Path(__file__).parents[3]
T = TypeVar("T")


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("no /usr/bin/chromium: run deploy/install-browser.sh (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def intake(spawn: Callable[..., Any]) -> str:
    return start_intake(spawn, {"REFERRAL_BUS_INTAKE_PUBLISH_TIMEOUT_S": "3", "REFERRAL_BUS_INTAKE_RETRY_AFTER_S": "1"},
                        timeout=60)


@pytest.fixture
def console(spawn: Callable[..., Any], intake: str) -> str:
    url, _ = start_http_service(spawn, "console", "REFERRAL_BUS_CONSOLE_PORT", {
        "REFERRAL_BUS_CONSOLE_METRICS_PORT": "0", "REFERRAL_BUS_CONSOLE_INTAKE_URL": intake,
        "REFERRAL_BUS_CONSOLE_PUBLISH_TIMEOUT_S": "2", "REFERRAL_BUS_CONSOLE_RETRY_MAX_S": "1"}, timeout=60)
    return url


def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run a helper that uses asyncio.run in another thread: Playwright's sync API keeps an event
    loop running in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def wait_js(page: Any, expression: str, timeout: float = 30.0) -> Any:
    """Poll a JavaScript expression until truthy. (Playwright's wait_for_function evaluates its
    predicate with eval, which the console's Content-Security-Policy forbids, as it should.)"""
    return wait_for(lambda: page.evaluate(f"() => ({expression})"), timeout, expression, interval=0.1)


def keep_screenshot(path: Path, name: str) -> None:
    """Screenshots land in the test's folder; with REFERRAL_BUS_UPDATE_SCREENSHOTS=1 they replace
    the ones the README shows (docs/)."""
    if os.environ.get("REFERRAL_BUS_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, REPO / "docs" / name)
