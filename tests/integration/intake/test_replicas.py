"""Issue #17: event ids and receipts belong to one agency, across intake replicas.

Two `referral-bus intake` processes (own state directories, own ports) and the router, on the
real broker. On main, an agency re-using another agency's event id got 202 from the second
replica, and the first agency's receipt then showed the other agency's event.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bus.kafka.reader import read_all
from bus.settings import KafkaSettings
from services.intake.demo import DEMO_TOKENS
from tests.integration.conftest import Service, start_intake, wait_for
from tests.unit.intake.intake_fakes import body, hospital_event
from topics.catalog import EVENTS

pytestmark = pytest.mark.integration

HOSPITAL = "health.designated_medical_institution"
OTHER = "health"


def start_replica(spawn: Callable[..., Service], tmp_path: Path, name: str) -> str:
    return start_intake(spawn, {"REFERRAL_BUS_INTAKE_INSTANCE": name,
                                "REFERRAL_BUS_STATE_DIR": str(tmp_path / f"state-{name}")})


def publish(url: str, event: dict[str, Any], agency: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/events", content=body(event), timeout=30,
                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {DEMO_TOKENS[agency]}"})


def status(url: str, event_id: str, agency: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/events/{event_id}", timeout=10,
                     headers={"Authorization": f"Bearer {DEMO_TOKENS[agency]}"})


def routed_receipt(url: str, event_id: str) -> Callable[[], httpx.Response | None]:
    """A poll for the reporting agency's receipt on `url`: the answer once it says routed."""
    def poll() -> httpx.Response | None:
        r = status(url, event_id, HOSPITAL)
        return r if r.status_code == 200 and r.json()["status"] == "routed" else None
    return poll


def as_other(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "reporter": {"agency": OTHER, "role": "official"}, "description": "another agency's event"}


def inbound_ids(kafka: KafkaSettings) -> list[str]:
    import json

    return [json.loads(r.value or b"{}").get("event_id") for r in asyncio.run(read_all(kafka, [EVENTS.name]))]


def test_an_event_id_belongs_to_its_first_agency_on_every_replica(
        kafka: KafkaSettings, spawn: Callable[..., Service], tmp_path: Path) -> None:
    spawn("router")
    first, second = start_replica(spawn, tmp_path, "a"), start_replica(spawn, tmp_path, "b")

    mine = hospital_event()
    event_id = mine["event_id"]
    assert publish(first, mine, HOSPITAL).status_code == 202

    # Another agency re-uses the id (it sees ids in referrals) through the other replica.
    taken = publish(second, as_other(mine), OTHER)
    assert taken.status_code == 409, taken.text  # on main: 202
    assert taken.json()["error"]["code"] == "event_id_conflict"

    # The owner's receipt, on both replicas; the other agency reads nothing of it.
    for url in (first, second):
        answer = wait_for(routed_receipt(url, event_id), 60, f"the routed receipt on {url}")
        assert answer.json()["receipt"]["reporter_agency"] == HOSPITAL
        assert status(url, event_id, OTHER).status_code == 404

    # The owner repeating its request through the other replica gets the original answer.
    again = publish(second, mine, HOSPITAL)
    assert again.status_code == 202 and again.headers.get("Idempotent-Replayed") == "true"
    assert inbound_ids(kafka).count(event_id) == 1


def test_two_agencies_racing_for_one_id_on_two_replicas_one_wins(
        kafka: KafkaSettings, spawn: Callable[..., Service], tmp_path: Path) -> None:
    first, second = start_replica(spawn, tmp_path, "a"), start_replica(spawn, tmp_path, "b")
    for _ in range(5):
        mine = hospital_event(event_id=str(uuid.uuid4()))
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            a = pool.submit(publish, first, mine, HOSPITAL)
            b = pool.submit(publish, second, as_other(mine), OTHER)
            answers = sorted([a.result().status_code, b.result().status_code])
        assert answers == [202, 409], answers
    ids = inbound_ids(kafka)
    assert len(ids) == len(set(ids)) == 5  # the loser's event never reached the bus
