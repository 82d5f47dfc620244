"""The intake behind a reverse proxy: its throttle counts failed token checks per client, and a
proxy's clients all come from the proxy's address. uvicorn believes `X-Forwarded-For` from the
addresses in `FORWARDED_ALLOW_IPS` (default 127.0.0.1, a proxy on the same host) and from no one
else, so the throttle sees each client behind a trusted proxy, and a client cannot dodge it by
writing the header itself."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from bus.local_broker import free_port
from tests.integration.conftest import Service, wait_for

pytestmark = pytest.mark.integration

WRONG_SECRET = "rb_hospital_not-the-right-secret"  # a known token id (the demo's hospital), a wrong secret


def start_intake(spawn: Callable[..., Service], forwarded_allow_ips: str) -> str:
    port = free_port()
    spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(port), "FORWARDED_ALLOW_IPS": forwarded_allow_ips,
                         # Three failures per client a minute, many per token: the client's window decides.
                         "REFERRAL_BUS_INTAKE_AUTH_MAX_FAILURES_PER_CLIENT": "3",
                         "REFERRAL_BUS_INTAKE_AUTH_MAX_FAILURES": "100"})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 30, "the intake")
    return url


def status_for(url: str, client: str) -> int:
    """Ask for a receipt with a wrong secret, as the proxy forwarding `client`'s request would."""
    answer = httpx.get(f"{url}/v1/events/{uuid.uuid4()}", timeout=10,
                       headers={"Authorization": f"Bearer {WRONG_SECRET}", "X-Forwarded-For": client})
    return answer.status_code


def test_behind_a_trusted_proxy_each_client_has_its_own_failures(spawn: Callable[..., Service]) -> None:
    url = start_intake(spawn, "127.0.0.1")
    assert [status_for(url, "203.0.113.7") for _ in range(4)] == [401, 401, 401, 429]
    assert status_for(url, "198.51.100.9") == 401  # another client behind the same proxy


def test_a_header_from_an_untrusted_address_is_not_believed(spawn: Callable[..., Service]) -> None:
    url = start_intake(spawn, "192.0.2.1")  # a proxy elsewhere; the test's requests are not from it
    assert [status_for(url, "203.0.113.7") for _ in range(4)] == [401, 401, 401, 429]
    assert status_for(url, "198.51.100.9") == 429  # the same client (127.0.0.1), whatever it writes
