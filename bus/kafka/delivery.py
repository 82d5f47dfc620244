"""Delivery guard: never commit an input offset whose outputs failed to reach the broker.

Sends are not awaited one by one (that would cost a broker round trip per referral); their
futures are tracked here instead, by the producer of the bus's faust transport
(`bus/kafka/faust_transport.py`), which every send of a worker passes, and by the alerts
service's tables from the moment a write is buffered (faust's flush can return before its last
buffered write reaches the producer). faust flushes the producer before it commits offsets, and
the transport's consumer asks this guard before each commit.
Once a delivery has failed, or an agent stopped before sending all its outputs (`trip`), the
guard stays failed: no later commit of the process passes it. It says so at once to its
`on_failure` (the worker's producer crashes the worker there, which exits non-zero) rather than
at the next commit, which may never come: aiokafka retries a commit in flight for as long as the
broker does not answer. The uncommitted input is routed again when the worker is restarted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast


class DeliveryFailed(RuntimeError):
    """A message the worker produced was not acknowledged by the broker, or never sent."""


class DeliveryGuard:
    def __init__(self, on_failure: Callable[[DeliveryFailed], None] | None = None) -> None:
        self._pending: list[asyncio.Future[Any]] = []
        self._failure: DeliveryFailed | None = None
        #: Called once, with the failure, the moment the guard fails.
        self.on_failure = on_failure

    def track(self, future: Awaitable[Any]) -> None:
        """Watch a send's future (faust types them as awaitables; they are futures): the guard
        fails as soon as it fails. On every send's path: no conversion, an append and a callback."""
        fut = cast("asyncio.Future[Any]", future)
        self._pending.append(fut)
        fut.add_done_callback(self._on_done)

    def trip(self, reason: BaseException) -> None:
        """Fail for good: `reason` stopped outputs from being sent (a send raised, the agent crashed)."""
        self._fail(DeliveryFailed(f"outputs were not all sent: {reason!r}"), reason)

    def _on_done(self, fut: asyncio.Future[Any]) -> None:
        if self._failure is None:
            self._failure_of(fut)

    def _failure_of(self, fut: asyncio.Future[Any]) -> DeliveryFailed | None:
        """Fail the guard if the finished delivery `fut` failed; the guard's failure, if any."""
        if fut.cancelled():
            self._fail(DeliveryFailed("a produce request was cancelled"))
        elif (exc := fut.exception()) is not None:
            self._fail(DeliveryFailed(f"a produce request failed: {exc!r}"), exc)
        return self._failure

    def _fail(self, failure: DeliveryFailed, cause: BaseException | None = None) -> None:
        if self._failure is None:
            failure.__cause__ = cause
            self._failure = failure
            if self.on_failure is not None:
                self.on_failure(failure)

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
            # (A delivery's callback may not have run yet: the loop schedules it.)
            still: list[asyncio.Future[Any]] = []
            for fut in self._pending:
                if not fut.done():
                    still.append(fut)
                elif self._failure_of(fut) is not None:
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
