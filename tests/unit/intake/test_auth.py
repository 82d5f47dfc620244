"""Failed authentication costs a bounded amount, whatever the attacker does (services/intake/auth.py)."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import patch

from bus.credentials import Credentials
from bus.throttle import FailureWindow, Throttled
from services.intake.auth import Authenticator
from services.intake.settings import IntakeSettings
from tests.unit.intake.test_regression_i17 import wrong_secret


def test_a_burst_of_concurrent_guesses_costs_at_most_the_allowance() -> None:
    creds = Credentials.load(IntakeSettings().credentials)
    authenticator = Authenticator(creds, max_failures=5, max_client_failures=1000)
    checks = []
    real_verify = creds.verify

    def verify(token: str, entry: Any) -> Any:
        checks.append(1)
        return real_verify(token, entry)

    async def burst() -> list[Any]:
        token = wrong_secret()["Authorization"].removeprefix("Bearer ")
        return await asyncio.gather(*(authenticator.authenticate(token, f"10.0.0.{i % 200}") for i in range(200)))

    with patch.object(creds, "verify", verify):
        results = asyncio.run(burst())
    assert len(checks) == 5
    assert sum(isinstance(r, Throttled) for r in results) == 195


def test_failure_tables_stay_bounded_whatever_the_number_of_clients() -> None:
    clock = [0.0]
    window = FailureWindow(max_failures=3, window_s=60, capacity=1000, clock=lambda: clock[0])
    for i in range(100_000):
        window.attempt(f"client-{i}")
    assert len(window) == 1000
    for _ in range(3):
        window.attempt("attacker")
    assert window.retry_after("attacker") == 60
    clock[0] = 61
    assert window.retry_after("attacker") == 0  # the window ends
