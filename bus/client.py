"""A small client for the intake: publish through the durable outbox, drain it with backoff.

    client = IntakeClient("http://127.0.0.1:8080", token, Outbox(Path(".state/outbox.sqlite")))
    client.publish(event_json_bytes)     # stored on disk first
    result = client.drain(deadline_s=30)  # sent until acknowledged, or left pending

The same client sends an agency's answers (`bus/answering.py`): another outbox, another path.

A send is retried on network errors, timeouts and 5xx/503 (honouring Retry-After); a 4xx that
concerns the event itself (invalid, forbidden, conflicting id) marks it rejected, with the
intake's answer kept for the reporter. A 401 stops the drain and leaves everything pending:
a wrong token is not the event's fault.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import httpx

from bus.outbox import Item, Outbox, backoff_s

Outcome = Literal["sent", "rejected", "retry"]

#: Statuses after which resending the same event cannot succeed.
_PERMANENT = {400, 403, 404, 409, 413, 415, 422}


class ClientAuthError(RuntimeError):
    """The intake refused the token (401): fix the configuration; the outbox keeps the events."""


@dataclass
class DrainResult:
    sent: int = 0
    rejected: int = 0
    retries: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)


class IntakeClient:
    """Publishes events to one intake as one agency (its token), through an outbox."""

    def __init__(self, url: str, token: str, outbox: Outbox, *, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 max_backoff_s: float = 30.0, path: Callable[[Item], str] | None = None) -> None:
        self.outbox = outbox
        #: Where an item is posted: `/v1/events` unless told otherwise.
        self._path = path or (lambda _: "/v1/events")
        self._sleep = sleep
        self._max_backoff_s = max_backoff_s
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, transport=transport,
                                  headers={"Authorization": f"Bearer {token}",
                                           "Content-Type": "application/json"})

    def publish(self, body: bytes) -> str:
        """Store the event in the outbox (durably) and return its id; `drain` sends it."""
        event_id: str = self.outbox.add(body)[0]
        return event_id

    def send(self, item: Item) -> tuple[Outcome, float | None]:
        """One attempt. Returns the outcome and, for a retry, the server's Retry-After if any."""
        try:
            response = self._http.post(self._path(item), content=item.body)
        except httpx.HTTPError as exc:
            self.outbox.mark_retry(item.event_id, type(exc).__name__, self._next(item))
            return "retry", None
        if response.status_code == 202:
            self.outbox.mark_sent(item.event_id, response.text)
            return "sent", None
        if response.status_code == 401:
            raise ClientAuthError("the intake refused the token (401)")
        if response.status_code in _PERMANENT:
            self.outbox.mark_rejected(item.event_id, response.text)
            return "rejected", None
        retry_after = _retry_after(response)
        when = self._next(item, at_least=retry_after)
        self.outbox.mark_retry(item.event_id, f"HTTP {response.status_code}", when)
        return "retry", retry_after

    def drain(self, *, deadline_s: float | None = None, idle_poll_s: float = 0.2,
              on_retry: Callable[[Item, float], None] | None = None) -> DrainResult:
        """Send every pending event until none is left or the deadline passes (None: until sent).
        `on_retry(item, seconds)` is told of each attempt that failed and when the next one is."""
        result = DrainResult()
        end = None if deadline_s is None else time.monotonic() + deadline_s
        while True:
            due = self.outbox.due()
            for item in due:
                outcome, _ = self.send(item)
                if outcome == "sent":
                    result.sent += 1
                elif outcome == "rejected":
                    result.rejected += 1
                else:
                    # The intake or the network is down: stop this pass rather than hammering it
                    # with the rest of the queue; everything waits for the next due time.
                    result.retries += 1
                    if on_retry is not None:
                        again = next((i for i in self.outbox.items("pending") if i.event_id == item.event_id), item)
                        on_retry(again, max(0.0, (again.next_attempt_at - dt.datetime.now(dt.UTC)).total_seconds()))
                    break
            pending = self.outbox.counts()["pending"]
            if pending == 0 or (end is not None and time.monotonic() >= end):
                result.pending = pending
                return result
            if not due or result.retries:
                nxt = self.outbox.next_due()
                wait = idle_poll_s if nxt is None else (nxt - dt.datetime.now(dt.UTC)).total_seconds()
                if end is not None:
                    wait = min(wait, end - time.monotonic())
                if wait > 0:
                    self._sleep(wait)

    def status(self, event_id: str) -> httpx.Response:
        """`GET /v1/events/{id}`: the event's receipt."""
        return self._http.get(f"/v1/events/{event_id}")

    def close(self) -> None:
        self._http.close()

    def _next(self, item: Item, at_least: float | None = None) -> dt.datetime:
        delay = backoff_s(item.attempts + 1, cap=self._max_backoff_s)
        if at_least is not None:
            delay = max(delay, at_least)
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None
