"""The faust workers' own log level is a setting: quiet by default (warnings and the services'
JSON lines), faust's and aiokafka's service messages when an operator asks for them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Service, wait_for

pytestmark = pytest.mark.integration

FAUST_STARTING = "INFO faust.worker [^Worker]: Starting..."


def test_each_worker_logs_faust_s_service_messages_at_the_level_it_is_given(
        spawn: Callable[..., Service], tmp_path: Path) -> None:
    router = spawn("router", env={"REFERRAL_BUS_ROUTER_LOG_LEVEL": "INFO"})
    alerts = spawn("alerts", env={"REFERRAL_BUS_ALERTS_LOG_LEVEL": "INFO"})
    quiet = spawn("alerts", env={"REFERRAL_BUS_ALERTS_APP_NAME": "referral-alerts-quiet",
                                 "REFERRAL_BUS_STATE_DIR": f"{tmp_path}/quiet-state"})
    for worker in (router, alerts):
        wait_for(lambda: FAUST_STARTING in worker.log, 60,  # noqa: B023 - called before the loop moves on
                 f"faust's INFO lines in {worker.command[0]}'s log")
    # The default: the service's own JSON lines (here, its tables restored), none of faust's INFO.
    wait_for(lambda: "tables_restored" in quiet.log, 60, "the quiet alerts worker ready")
    assert "INFO faust" not in quiet.log, quiet.log[-2000:]
