"""Fakes and sample events for the intake's unit tests."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from bus.kafka.publisher import BrokerUnavailable, Written
from services.intake.demo import DEMO_TOKENS

HOSPITAL = "health.designated_medical_institution"


class FakePublisher:
    """Records what would be produced; `down = True` simulates an unreachable broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.down = False

    async def publish(self, topic: str, key: bytes, value: bytes) -> Written:
        if self.down:
            raise BrokerUnavailable("KafkaTimeoutError")
        self.sent.append((topic, key, value))
        return Written(0, len(self.sent) - 1)

    async def close(self) -> None:
        return None

    def on(self, topic: str) -> list[bytes]:
        return [v for t, _, v in self.sent if t == topic]


def hospital_event(**overrides: Any) -> dict[str, Any]:
    """A valid event a hospital may publish (a nurse's mandatory report)."""
    now = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "kind": "medical_staff_suspects_trafficking",
        "jurisdiction": "yunyang", "occurred_at": (now - dt.timedelta(hours=1)).isoformat(),
        "reported_at": now.isoformat(),
        "reporter": {"agency": HOSPITAL, "role": "medical_staff"},
        "person": {"age": 0, "sex": "female", "nationality": "CN", "name": "刘招娣"},
        "location": {"place": "云阳县人民医院"},
        "suspicion": "trafficking_or_related_crime",
        "description": "Newborn brought in without a birth certificate.",
    }
    event.update(overrides)
    return event


def app_of(client: TestClient) -> FastAPI:
    """The intake app a test client drives (its state holds the intake's context)."""
    app = client.app
    assert isinstance(app, FastAPI)
    return app


def auth(agency: str = HOSPITAL) -> dict[str, str]:
    return {"Authorization": f"Bearer {DEMO_TOKENS[agency]}"}


def body(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()
