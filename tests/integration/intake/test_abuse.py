"""Issue #17: `referral-bus intake` itself under abuse, over raw sockets.

What uvicorn answers before the app sees a request, and how long a connection may be held,
depend on how `run()` starts the server, so these run the real command (a broker is there
for completeness: none of these requests reaches it).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bus.local_broker import free_port
from services.intake.demo import DEMO_TOKENS
from tests.integration.conftest import Service, listening_addresses, wait_for

pytestmark = pytest.mark.integration

HOSPITAL = "health.designated_medical_institution"


@pytest.fixture
def intake(spawn: Callable[..., Service]) -> tuple[int, int]:
    """(API port, metrics port) of a running intake with short request deadlines."""
    port, metrics_port = free_port(), free_port()
    spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(port), "REFERRAL_BUS_INTAKE_METRICS_PORT": str(metrics_port),
                         "REFERRAL_BUS_INTAKE_REQUEST_HEAD_TIMEOUT_S": "1", "REFERRAL_BUS_INTAKE_BODY_TIMEOUT_S": "1"})
    wait_for(lambda: _up(port), 30, "the intake")
    return port, metrics_port


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def exchange(port: int, data: bytes, *, wait_s: float = 8.0) -> tuple[bytes, float]:
    """Send `data`, read until the server closes (or `wait_s`); returns (answer, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks), time.monotonic() - started


def status_and_error(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head, "no answer"
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(rest)["error"]


def test_an_unparseable_request_gets_the_documented_error_shape(intake: tuple[int, int]) -> None:
    port, _ = intake
    for data in (b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad{Header}: 1\r\n\r\n",
                 b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"):
        answer, _ = exchange(port, data)
        status, error = status_and_error(answer)  # on main: text/plain "Invalid HTTP request received."
        assert (status, error["code"]) == (400, "bad_request")


def test_a_request_head_that_never_ends_is_closed_with_408(intake: tuple[int, int]) -> None:
    answer, took = exchange(intake[0], b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Ty")
    assert status_and_error(answer)[0] == 408
    assert took < 7  # closed by the 1 s deadline, before the client gave up


def test_a_body_that_never_arrives_is_answered_408(intake: tuple[int, int]) -> None:
    head = (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEMO_TOKENS[HOSPITAL]}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n").encode()
    answer, _ = exchange(intake[0], head + b'{"event_id": ')
    status, error = status_and_error(answer)  # on main: no answer, the connection held for over 90 s
    assert (status, error["code"]) == (408, "request_timeout")


def test_a_body_left_unread_does_not_hold_the_connection(intake: tuple[int, int]) -> None:
    # The route answers 401 without reading the declared body; the client keeps trickling it.
    head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    started = time.monotonic()
    closed = False
    with socket.create_connection(("127.0.0.1", intake[0]), timeout=0.2) as sock:
        sock.sendall(head)
        while not closed and time.monotonic() - started < 8:
            try:
                sock.sendall(b"x")
                closed = sock.recv(65536) == b""
            except TimeoutError:
                pass
            except OSError:
                closed = True
            time.sleep(0.1)
    assert closed, "the connection was still open after 8 s"


def test_metrics_are_not_on_the_api_port_and_listen_on_loopback(intake: tuple[int, int]) -> None:
    port, metrics_port = intake
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404  # on main: served to anyone
    assert "referral_bus_intake_requests_total" in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    listening = listening_addresses(metrics_port)
    assert listening == {"127.0.0.1"}, listening
