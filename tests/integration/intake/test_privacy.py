"""No victim's personal field in any log line or metric label, while the demo runs.

Runs `referral-bus demo` against a broker of its own, scrapes the router's /metrics while the
demo is running, then scans the demo's output, the router's log, the broker's log and every
scraped metric for each personal value the demo published.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from bus.demo_events import PERSONAL_VALUES
from bus.local_broker import LocalBroker, free_port

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("referral-bus"))


def test_demo_logs_and_metrics_hold_no_personal_values(broker: LocalBroker, tmp_path: Path) -> None:
    state = tmp_path / "demo-state"
    metrics_port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "REFERRAL_BUS_STATE_DIR": str(state),
           "REFERRAL_BUS_ROUTER_METRICS_PORT": str(metrics_port)}
    scrapes: list[str] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.wait(0.5):
            try:
                scrapes.append(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text)
            except httpx.HTTPError:
                continue

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        run = subprocess.run([CLI, "demo"], env=env, capture_output=True, text=True, timeout=240)
    finally:
        done.set()
        scraper.join(5)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert any("referral_bus_referrals_total" in s for s in scrapes), "no metrics scraped during the demo"

    texts = {"demo stdout": run.stdout, "demo stderr": run.stderr, "metrics": "\n".join(scrapes)}
    for log in [*state.rglob("*.log"), *tmp_path.glob("*.log")]:
        texts[str(log.relative_to(tmp_path))] = log.read_text(errors="replace")
    assert "router.log" in " ".join(texts), sorted(texts)
    lines = sum(t.count("\n") for t in texts.values())
    leaks = [(where, value) for where, text in texts.items() for value in PERSONAL_VALUES if value in text]
    assert not leaks, leaks
    print(f"\nprivacy scan: {len(PERSONAL_VALUES)} personal values, {lines} lines in {len(texts)} sources, "
          f"{len(scrapes)} metric scrapes: no leak")
