"""The intake and the console behind a reverse proxy: their throttles count failed checks (agency
tokens, sign-ins) per client, and a proxy's clients all come from the proxy's address. uvicorn
believes `X-Forwarded-For` from the addresses in `FORWARDED_ALLOW_IPS` (default 127.0.0.1, a proxy
on the same host) and from no one else, so the throttles see each client behind a trusted proxy,
and a client cannot dodge them by writing the header itself."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.integration.conftest import Service, start_http_service

pytestmark = pytest.mark.integration

#: A known token id (the demo's hospital) with a wrong secret.
WRONG_SECRET = "rb_hospital_not-the-right-secret"
#: Three failures per client a minute, many per token or officer: the client's window decides.
INTAKE = {"REFERRAL_BUS_INTAKE_AUTH_MAX_FAILURES_PER_CLIENT": "3", "REFERRAL_BUS_INTAKE_AUTH_MAX_FAILURES": "100"}
CONSOLE = {"REFERRAL_BUS_CONSOLE_SIGN_IN_MAX_FAILURES_PER_CLIENT": "3",
           "REFERRAL_BUS_CONSOLE_SIGN_IN_MAX_FAILURES": "100", "REFERRAL_BUS_CONSOLE_METRICS_PORT": "0"}


def receipt_status(url: str, client: str) -> int:
    """Ask the intake for a receipt with a wrong secret, as a proxy forwarding `client` would."""
    return httpx.get(f"{url}/v1/events/{uuid.uuid4()}", timeout=10, headers={
        "Authorization": f"Bearer {WRONG_SECRET}", "X-Forwarded-For": client}).status_code


def sign_in_status(url: str, client: str) -> int:
    """Sign in to the console with a wrong password, as a proxy forwarding `client` would."""
    return httpx.post(f"{url}/api/sign-in", timeout=10, headers={"X-Forwarded-For": client},
                      json={"officer": "duty.officer", "password": "not-the-password"}).status_code


SERVICES = {
    "intake": ("REFERRAL_BUS_INTAKE_PORT", INTAKE, receipt_status),
    "console": ("REFERRAL_BUS_CONSOLE_PORT", CONSOLE, sign_in_status),
}


@pytest.mark.parametrize("service", SERVICES)
def test_behind_a_trusted_proxy_each_client_has_its_own_failures(spawn: Callable[..., Service],
                                                                  service: str) -> None:
    port_env, env, status = SERVICES[service]
    url, _ = start_http_service(spawn, service, port_env, {**env, "FORWARDED_ALLOW_IPS": "127.0.0.1"}, timeout=60)
    assert [status(url, "203.0.113.7") for _ in range(4)] == [401, 401, 401, 429]
    assert status(url, "198.51.100.9") == 401  # another client behind the same proxy


@pytest.mark.parametrize("service", SERVICES)
def test_a_header_from_an_untrusted_address_is_not_believed(spawn: Callable[..., Service], service: str) -> None:
    port_env, env, status = SERVICES[service]
    # A proxy elsewhere: the test's requests do not come from it.
    url, _ = start_http_service(spawn, service, port_env, {**env, "FORWARDED_ALLOW_IPS": "192.0.2.1"}, timeout=60)
    assert [status(url, "203.0.113.7") for _ in range(4)] == [401, 401, 401, 429]
    assert status(url, "198.51.100.9") == 429  # the same client (127.0.0.1), whatever it writes
