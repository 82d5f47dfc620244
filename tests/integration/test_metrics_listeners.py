"""Every worker's `/metrics` listens on loopback unless told otherwise: the metrics name agencies and
jurisdictions, and carry no authentication (Compose opens them to its own network for Prometheus,
`REFERRAL_BUS_<SERVICE>_METRICS_HOST`; tests/deploy/test_compose.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from bus.local_broker import free_port
from tests.integration.conftest import Service, listening_addresses, wait_for

pytestmark = pytest.mark.integration

#: Each worker, its metrics port variable and a metric it always exports.
WORKERS = {
    "router": ("REFERRAL_BUS_ROUTER_METRICS_PORT", "referral_bus_"),
    "alerts": ("REFERRAL_BUS_ALERTS_METRICS_PORT", "referral_bus_"),
    "broadcast": ("REFERRAL_BUS_BROADCAST_METRICS_PORT", "referral_bus_"),
}


@pytest.mark.parametrize("worker", WORKERS)
def test_a_worker_serves_its_metrics_on_loopback_by_default(spawn: Callable[..., Service], worker: str) -> None:
    port_variable, prefix = WORKERS[worker]
    port = free_port()
    service = spawn(worker, env={port_variable: str(port)})

    def metrics() -> str | None:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
        except httpx.HTTPError:
            return None
        return answer.text if answer.status_code == 200 else None

    assert prefix in wait_for(metrics, 60, f"{worker}'s metrics\n{service.log}")
    assert listening_addresses(port) == {"127.0.0.1"}
