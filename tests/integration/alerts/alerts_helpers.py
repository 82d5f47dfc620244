"""Publishing reports and reading the alerts service's topics on the test broker."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from bus.kafka.clients import producer
from bus.kafka.reader import latest_by_key, read_all
from bus.settings import KafkaSettings
from schemas.alerts import CaseChange, Escalation, PoliceAlert, TrackedState
from topics.catalog import ALERT_STATES, CASES, ESCALATIONS, EVENTS, POLICE_ALERTS

from ..conftest import start_intake, wait_for

HERE = Path(__file__).parent
SHORT = HERE / "deadlines-short.yaml"
RESTART = HERE / "deadlines-restart.yaml"
CLI = str(Path(sys.executable).with_name("referral-bus"))


def iso(t: dt.datetime) -> str:
    return t.isoformat()


def report(*, jurisdiction: str = "xian", age: int = 6, sex: str = "female", place: str = "西安北站",
           exercise: bool = False, event_id: uuid.UUID | None = None) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "event_id": str(event_id or uuid.uuid4()), "kind": "child_missing_reported", "jurisdiction": jurisdiction,
        "occurred_at": iso(now - dt.timedelta(minutes=30)), "reported_at": iso(now),
        "reporter": {"agency": None, "role": "parent_or_guardian"}, "person": {"age": age, "sex": sex},
        "last_seen_at": iso(now - dt.timedelta(minutes=30)), "last_seen_location": {"place": place},
        "exercise": exercise,
    }


def clue_event(*, place: str = "西安北站候车室", age: int = 7, sex: str = "female") -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "event_id": str(uuid.uuid4()), "kind": "child_of_unknown_origin_found", "jurisdiction": "xian",
        "occurred_at": iso(now), "reported_at": iso(now), "reporter": {"agency": "railway", "role": "railway_staff"},
        "person": {"age": age, "sex": sex}, "location": {"place": place},
    }


def resolution(case_id: str, agency: str | None) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "event_id": str(uuid.uuid4()), "kind": "case_resolved", "jurisdiction": "xian",
        "occurred_at": iso(now), "reported_at": iso(now), "reporter": {"agency": agency, "role": "public"},
        "case_id": case_id, "outcome": "found_alive",
    }


def publish(kafka: KafkaSettings, events: list[dict[str, Any]], *, pace: float = 0.0) -> None:
    async def go() -> None:
        p = producer(kafka)
        await p.start()
        try:
            for e in events:
                key = (e.get("case_id") or e["event_id"]).encode()
                await p.send_and_wait(EVENTS.name, json.dumps(e, ensure_ascii=False).encode(), key=key)
                if pace:
                    await asyncio.sleep(pace)
        finally:
            await p.stop()

    asyncio.run(go())


def read(kafka: KafkaSettings, topic: str) -> list[bytes]:
    return [r.value for r in asyncio.run(read_all(kafka, [topic])) if r.value is not None]


def alerts(kafka: KafkaSettings) -> list[PoliceAlert]:
    return [PoliceAlert.model_validate_json(v) for v in read(kafka, POLICE_ALERTS.name)]


def escalations(kafka: KafkaSettings) -> list[Escalation]:
    return [Escalation.model_validate_json(v) for v in read(kafka, ESCALATIONS.name)]


def states(kafka: KafkaSettings) -> dict[str, TrackedState]:
    raw = latest_by_key(asyncio.run(read_all(kafka, [ALERT_STATES.name])))
    return {k: TrackedState.model_validate_json(v) for k, v in raw.items()}


def case_changes(kafka: KafkaSettings) -> list[CaseChange]:
    return [CaseChange.model_validate_json(v) for v in read(kafka, CASES.name)]


def start_answering_intake(spawn: Any) -> str:
    """The intake, which agencies (and `referral-bus ack|accept|reject|done`) answer through; its URL."""
    return start_intake(spawn, {"REFERRAL_BUS_INTAKE_METRICS_PORT": "0"})


def as_agency(env: dict[str, str], url: str, agency: str) -> dict[str, str]:
    """The environment of a terminal at `agency`: its token and the intake it answers through."""
    from services.intake.demo import DEMO_TOKENS

    return {**env, "REFERRAL_BUS_INTAKE_URL": url, "REFERRAL_BUS_TOKEN": DEMO_TOKENS[agency]}


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


wait_until = wait_for
