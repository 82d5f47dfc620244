"""The broadcast service as a child process (imported by conftest and the tests)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from bus.kafka.reader import read_all
from bus.settings import KafkaSettings
from topics.catalog import BROADCAST_CHANNELS, broadcast_topic

from ..conftest import Service

#: The 团圆 schedule shortened by configuration: 100 km for 6 s, 200 until 12 s, 300 until 18 s, then 500.
SHORT_SCHEDULE: list[dict[str, Any]] = [{"within": 6, "radius_km": 100}, {"within": 12, "radius_km": 200},
                  {"within": 18, "radius_km": 300}, {"within": None, "radius_km": 500}]


@dataclass(kw_only=True)
class BroadcastProcess(Service):
    """One `referral-bus broadcast` process; `kill()` then `start()` restarts it with the same ports and config."""

    command: list[str] = field(default_factory=lambda: ["broadcast"])
    http_port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass(frozen=True)
class Cap:
    """One CAP message as a channel received it (value: the CAP XML)."""

    channel: str
    msg_type: str
    identifier: str
    xml: bytes


def caps(kafka: KafkaSettings, case: uuid.UUID) -> list[Cap]:
    """Every CAP message of `case` on the broadcast channels so far, in order per channel."""
    records = asyncio.run(read_all(kafka, [broadcast_topic(c).name for c in BROADCAST_CHANNELS]))
    out = []
    for r in records:
        if r.key != str(case).encode() or r.value is None:
            continue
        headers = {k: v.decode() for k, v in r.headers}
        out.append(Cap(r.topic.removeprefix("broadcast."), headers["cap-msg-type"], headers["cap-identifier"],
                       r.value))
    return out


def feed_text(service: BroadcastProcess) -> str:
    return httpx.get(f"{service.url}/feed/cap.atom", timeout=5).text


def is_ready(service: BroadcastProcess) -> bool:
    """`/healthz` answers 200 (the state is restored and the worker consumes)."""
    assert service.process is not None and service.process.poll() is None, service.log
    try:
        return httpx.get(f"{service.url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
