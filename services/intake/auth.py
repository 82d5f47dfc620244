"""Authentication that an attacker cannot make expensive.

A token's secret is checked with scrypt (~15 ms of CPU and 16 MiB of memory each, on purpose: a
leaked credentials file does not leak tokens). Unbounded, wrong secrets for a known token id
cost one check each: on main, 600 of them at 24/s pushed a receipt read from 2 ms to 451 ms and
the process from 65 to 807 MB (FastAPI ran up to 40 checks at once in its thread pool). Here:

- a token this process already verified costs a dictionary lookup, whatever else happens, so an
  attack on an agency's token id does not lock out the agency's own systems;
- one scrypt check runs at a time (`slots`), off the event loop: memory stays constant and the
  other requests keep their core;
- each token id and each client address may start a few checks that did not succeed per window
  (`max_failures`, `max_client_failures`; `bus.throttle`, which the console's sign-in uses too);
  beyond that the answer is 429 with Retry-After, before any work. A missing, malformed or
  unknown token costs nothing to refuse and is not counted (a proxy's address is not locked by
  browsers without tokens).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bus.credentials import Credentials, Principal
from bus.throttle import AttemptGate, Throttled


class Authenticator:
    """Bearer tokens to agencies, with the cost of failures bounded."""

    def __init__(self, credentials: Credentials, *, max_failures: int = 5, max_client_failures: int = 20,
                 window_s: float = 60.0, capacity: int = 4096, slots: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.credentials = credentials
        self.gate = AttemptGate(max_failures=max_failures, max_client_failures=max_client_failures,
                                window_s=window_s, capacity=capacity, slots=slots, clock=clock)

    async def authenticate(self, token: str | None, client: str) -> Principal | Throttled | None:
        """The agency behind `token`, None (no, malformed, unknown or wrong token), or Throttled."""
        if token:
            cached = self.credentials.cached(token)
            if cached is not None:
                return cached
        entry = self.credentials.candidate(token) if token else None
        if token is None or entry is None:
            return None  # no token, or not one of ours: nothing to check, nothing spent
        throttled = self.gate.enter(entry.id, client)
        if throttled is not None:
            return throttled
        async with self.gate.slot:
            principal = await asyncio.to_thread(self.credentials.verify, token, entry)
        if principal is not None:
            self.gate.succeeded(entry.id, client)
        return principal
