"""Delivery guard: never commit an input offset whose outputs failed to reach the broker.

Sends are not awaited one by one (that would cost a broker round trip per referral); their
futures are tracked here instead. faust flushes the producer before it commits offsets, and
the bus's faust consumer (`bus/kafka/faust_transport.py`) asks this guard before each commit:
a failed delivery stops the worker, so the uncommitted input is routed again on restart.
"""

from __future__ import annotations

import asyncio
from typing import Any


class DeliveryFailed(RuntimeError):
    """A message the worker produced was not acknowledged by the broker."""


class DeliveryGuard:
    def __init__(self) -> None:
        self._pending: list[asyncio.Future[Any]] = []

    def track(self, future: asyncio.Future[Any]) -> None:
        self._pending.append(future)

    def raise_if_failed(self) -> None:
        """Raise if any finished delivery failed; forget the finished ones."""
        still: list[asyncio.Future[Any]] = []
        for fut in self._pending:
            if not fut.done():
                still.append(fut)
            elif fut.cancelled():
                raise DeliveryFailed("a produce request was cancelled")
            elif (exc := fut.exception()) is not None:
                raise DeliveryFailed(f"a produce request failed: {exc!r}") from exc
        self._pending = still

    @property
    def pending(self) -> int:
        return len(self._pending)
