"""The intake's HTTP connection handling: uvicorn's h11 protocol with two things added.

- **The error shape before the app.** A request h11 cannot parse (a broken request line, a
  header too large) is answered by uvicorn itself, in plain text; here it is answered in the
  intake's documented JSON shape (400 `bad_request`).
- **No connection held for free.** uvicorn has no deadline for a request head that never ends,
  nor for the rest of a body its route did not read: a client sending a few bytes now and then
  keeps the connection (and its memory) for ever (on main an incomplete body held one for over
  90 s). Here, whenever no route is handling a request on the connection, the connection must
  complete its next request head within `request_head_timeout_s`, or it gets a 408 in the same
  JSON shape (when nothing has been answered yet) and is closed. Bodies are bounded by the
  route that reads them (`routes._read_body`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def error_bytes(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response in the intake's error shape, closing the connection."""
    body = json.dumps({"error": {"code": code, "message": message, "fields": []}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
    return head + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the JSON error shape and the request-head deadline."""

    request_head_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def send_400_response(self, msg: str) -> None:
        # h11 reached its error state (uvicorn has logged it): the request is unreadable, and
        # nothing of it is repeated.
        self._disarm()
        self.transport.write(error_bytes(400, "Bad Request", "bad_request", "the HTTP request could not be parsed"))
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.request_head_timeout_s, self._deadline_passed)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _deadline_passed(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a route is handling a request; when it answers, the deadline starts again
        partial_head = self.conn.our_state is h11.IDLE and bool(self.conn.trailing_data[0])
        if partial_head:
            self.transport.write(error_bytes(408, "Request Timeout", "request_timeout",
                                             "the request did not arrive in time"))
        # else: an idle connection (closed as uvicorn's keep-alive would), or the route answered
        # without reading the whole body, which is still trickling in: nothing more to answer.
        self.transport.close()


def protocol_class(request_head_timeout_s: float) -> type[GuardedH11Protocol]:
    """The protocol uvicorn instantiates per connection, with the configured deadline."""
    return type("IntakeH11Protocol", (GuardedH11Protocol,), {"request_head_timeout_s": request_head_timeout_s})
