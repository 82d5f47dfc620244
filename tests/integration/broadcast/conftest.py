"""The broadcast service as a real subprocess on the suite's broker (tests/integration/conftest.py).

Started as `referral-bus broadcast`, so a test can SIGKILL it and start it again on the same broker
(same ports, same configuration).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bus.local_broker import LocalBroker, free_port
from services.broadcast.settings import DEFAULT_CONFIG

from .broadcast_process import SHORT_SCHEDULE, BroadcastProcess


@pytest.fixture
def broadcast_service(broker: LocalBroker, tmp_path: Path) -> Iterator[BroadcastProcess]:
    """The service on this test's broker, with the shortened schedule; stopped after the test."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    config["radius_schedule"] = SHORT_SCHEDULE
    config_path = tmp_path / "broadcast.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    http_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "REFERRAL_BUS_STATE_DIR": str(tmp_path / "state"),
        "REFERRAL_BUS_SESSION_TIMEOUT_MS": "6000",
        "REFERRAL_BUS_BROADCAST_CONFIG": str(config_path),
        "REFERRAL_BUS_BROADCAST_HTTP_PORT": str(http_port),
        "REFERRAL_BUS_BROADCAST_HTTP_HOST": "127.0.0.1",
        "REFERRAL_BUS_BROADCAST_METRICS_PORT": str(metrics_port),
        "REFERRAL_BUS_BROADCAST_MAX_TICK_SECONDS": "0.5",
    }
    service = BroadcastProcess(env=env, log_path=tmp_path / "broadcast.log", http_port=http_port,
                               metrics_port=metrics_port).start()
    try:
        yield service
    finally:
        service.stop()
