"""Delivery guard: never commit an input offset whose outputs failed to reach the broker.

Sends are not awaited one by one (that would cost a broker round trip per referral); their
futures are tracked here instead, by the producer of the bus's faust transport
(`bus/kafka/faust_transport.py`), which every send of a worker passes, and by the alerts
service's tables from the moment a write is buffered (faust's flush can return before its last
buffered write reaches the producer). faust flushes the producer before it commits offsets, and
the transport's consumer asks this guard before each commit.
Once a delivery has failed, or an agent stopped before sending all its outputs (`trip`), the
guard stays failed: no later commit of the process passes it, and the consumer crashes the
worker, which exits non-zero; the uncommitted input is routed again when it is restarted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, cast


class DeliveryFailed(RuntimeError):
    """A message the worker produced was not acknowledged by the broker, or never sent."""


class DeliveryGuard:
    def __init__(self) -> None:
        self._pending: list[asyncio.Future[Any]] = []
        self._failure: DeliveryFailed | None = None

    def track(self, future: Awaitable[Any]) -> None:
        """Watch a send's future (faust types them as awaitables; they are futures). On every
        send's path: no conversion, just the append."""
        self._pending.append(cast("asyncio.Future[Any]", future))

    def trip(self, reason: BaseException) -> None:
        """Fail for good: `reason` stopped outputs from being sent (a send raised, the agent crashed)."""
        if self._failure is None:
            self._failure = DeliveryFailed(f"outputs were not all sent: {reason!r}")
            self._failure.__cause__ = reason

    async def settle(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the tracked deliveries to finish.

        Called after faust's producer flush, when the broker has answered the sends the flush
        covered; a send made meanwhile by another task may still be in flight.
        """
        pending = [fut for fut in self._pending if not fut.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def raise_if_failed(self) -> None:
        """Raise if a finished delivery failed, and on every call after; forget the finished ones."""
        if self._failure is None:
            still: list[asyncio.Future[Any]] = []
            for fut in self._pending:
                if not fut.done():
                    still.append(fut)
                elif fut.cancelled():
                    self._failure = DeliveryFailed("a produce request was cancelled")
                    break
                elif (exc := fut.exception()) is not None:
                    self._failure = DeliveryFailed(f"a produce request failed: {exc!r}")
                    self._failure.__cause__ = exc
                    break
            else:
                self._pending = still
        if self._failure is not None:
            raise self._failure.with_traceback(None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def latest(self) -> asyncio.Future[Any] | None:
        """The delivery tracked last, if any is still pending or unchecked."""
        return self._pending[-1] if self._pending else None
