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
  (`max_failures`, `max_client_failures`); beyond that the answer is 429 with Retry-After,
  before any work. An attempt counts when it starts, so a burst of concurrent guesses cannot
  all slip in before the first failure is recorded. A missing, malformed or unknown token costs
  nothing to refuse and is not counted (a proxy's address is not locked by browsers without
  tokens);
- the tables of failures hold `capacity` keys each, the least recently seen dropped first.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from bus.credentials import Credentials, Principal


@dataclass(frozen=True)
class Throttled:
    """Too many failed attempts from this token id or client: try again after `retry_after_s`."""

    retry_after_s: int


class FailureWindow:
    """Attempts without a success per key in a fixed window, for at most `capacity` keys."""

    def __init__(self, max_failures: int, window_s: float, capacity: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again (0: it may now)."""
        entry = self._current(key)
        if entry is None or entry[1] < self.max_failures:
            return 0.0
        return max(0.0, entry[0] + self.window_s - self._clock())

    def attempt(self, key: str) -> None:
        """Count an attempt (it stays counted unless a success clears the key)."""
        started, count = self._current(key) or (self._clock(), 0)
        self._entries[key] = (started, count + 1)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def _current(self, key: str) -> tuple[float, int] | None:
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry[0] >= self.window_s:
            del self._entries[key]
            return None
        return entry


class Authenticator:
    """Bearer tokens to agencies, with the cost of failures bounded."""

    def __init__(self, credentials: Credentials, *, max_failures: int = 5, max_client_failures: int = 20,
                 window_s: float = 60.0, capacity: int = 4096, slots: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.credentials = credentials
        self.by_token = FailureWindow(max_failures, window_s, capacity, clock)
        self.by_client = FailureWindow(max_client_failures, window_s, capacity, clock)
        self._slots = asyncio.Semaphore(slots)

    async def authenticate(self, token: str | None, client: str) -> Principal | Throttled | None:
        """The agency behind `token`, None (no, malformed, unknown or wrong token), or Throttled."""
        if token:
            cached = self.credentials.cached(token)
            if cached is not None:
                return cached
        entry = self.credentials.candidate(token) if token else None
        if token is None or entry is None:
            return None  # no token, or not one of ours: nothing to check, nothing spent
        wait = max(self.by_client.retry_after(client), self.by_token.retry_after(entry.id))
        if wait > 0:
            return Throttled(max(1, round(wait)))
        self.by_client.attempt(client)
        self.by_token.attempt(entry.id)
        async with self._slots:
            principal = await asyncio.to_thread(self.credentials.verify, token, entry)
        if principal is not None:
            self.by_token.succeeded(entry.id)
            self.by_client.succeeded(client)
        return principal
