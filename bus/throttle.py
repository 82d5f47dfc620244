"""Failed attempts at a costly check (a scrypt hash of a secret or a password), bounded per key and
per client, so that guessing is slow and cannot make the service expensive for everyone else.

Each key (a token id, an officer id) and each client address may start a few attempts that did not
succeed per window; beyond that the answer is "try again after n seconds", before any work. An
attempt counts when it starts, so a burst of concurrent guesses cannot all slip in before the
first failure is recorded. One costly check runs at a time (`slot`), off the event loop, so memory
stays constant and the other requests keep their core. The tables hold `capacity` keys each, the
least recently seen dropped first. Used by the intake (agency tokens) and the console (sign-in).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Throttled:
    """Too many failed attempts from this key or client: try again after `retry_after_s`."""

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


class AttemptGate:
    """Who may start a costly check now: per-key and per-client failure windows, one check at a time."""

    def __init__(self, *, max_failures: int = 5, max_client_failures: int = 20, window_s: float = 60.0,
                 capacity: int = 4096, slots: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        self.by_key = FailureWindow(max_failures, window_s, capacity, clock)
        self.by_client = FailureWindow(max_client_failures, window_s, capacity, clock)
        self.slot = asyncio.Semaphore(slots)

    def enter(self, key: str, client: str) -> Throttled | None:
        """Throttled if `key` or `client` used up its attempts; else the attempt is counted."""
        wait = max(self.by_client.retry_after(client), self.by_key.retry_after(key))
        if wait > 0:
            return Throttled(max(1, round(wait)))
        self.by_client.attempt(client)
        self.by_key.attempt(key)
        return None

    def succeeded(self, key: str, client: str) -> None:
        self.by_key.succeeded(key)
        self.by_client.succeeded(client)
