"""The reporter's outbox and client: durable first, sent until acknowledged, exactly once."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bus.client import ClientAuthError, IntakeClient
from bus.outbox import Outbox, OutboxError, backoff_s
from services.intake.demo import DEMO_TOKENS
from tests.unit.intake.intake_fakes import HOSPITAL, FakePublisher, body, hospital_event
from topics.catalog import EVENTS


def test_events_survive_reopening_the_outbox(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    ids = [box.add(body(hospital_event()))[0] for _ in range(3)]
    box.close()  # a crash or a reboot
    again = Outbox(path)
    assert [i.event_id for i in again.due()] == ids
    assert again.counts() == {"pending": 3, "sent": 0, "rejected": 0}


def test_same_event_twice_is_one_item(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    raw = body(hospital_event())
    assert box.add(raw)[1] is True
    assert box.add(raw)[1] is False
    assert box.counts()["pending"] == 1


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"kind": "x"}'])
def test_outbox_refuses_what_cannot_be_resent_safely(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(OutboxError):
        Outbox(tmp_path / "o.sqlite").add(raw)


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_s(n, jitter=0, rng=rng) for n in range(1, 10)]
    assert delays[:4] == [1, 2, 4, 8] and max(delays) == 60
    assert all(0.8 <= backoff_s(1, rng=rng) <= 1.2 for _ in range(50))


def test_drain_through_the_intake_sends_each_once(client: TestClient, publisher: FakePublisher,
                                                  tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    c = IntakeClient("http://testserver", DEMO_TOKENS[HOSPITAL], box, transport=client._transport)
    ids = [c.publish(body(hospital_event())) for _ in range(5)]
    result = c.drain(deadline_s=5)
    assert (result.sent, result.pending, result.rejected) == (5, 0, 0)
    assert [json.loads(v)["event_id"] for v in publisher.on(EVENTS.name)] == ids
    # Requeue-and-resend (as after a crash before the answer was stored) publishes nothing new.
    box._db.execute("UPDATE outbox SET status = 'pending'")
    assert c.drain(deadline_s=5).sent == 5
    assert len(publisher.on(EVENTS.name)) == 5


def test_broker_down_keeps_events_pending_then_drains(client: TestClient, publisher: FakePublisher,
                                                      tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    slept: list[float] = []
    c = IntakeClient("http://testserver", DEMO_TOKENS[HOSPITAL], box, transport=client._transport,
                     sleep=slept.append)
    for _ in range(3):
        c.publish(body(hospital_event()))
    publisher.down = True
    told: list[tuple[str, float]] = []
    result = c.drain(deadline_s=0, on_retry=lambda item, wait: told.append((item.event_id, wait)))
    assert result.pending == 3 and result.retries == 1  # stops at the first failure, no hammering
    assert len(told) == 1 and told[0][1] >= 4  # the waiting publisher is told when the next try is
    [item] = [i for i in box.items() if i.attempts]
    assert item.last_error == "HTTP 503"
    assert item.next_attempt_at >= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)  # Retry-After: 5
    publisher.down = False
    box._db.execute("UPDATE outbox SET next_attempt_at = created_at")
    assert c.drain(deadline_s=5).sent == 3


def test_invalid_event_is_rejected_and_kept_with_the_answer(client: TestClient, tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    c = IntakeClient("http://testserver", DEMO_TOKENS[HOSPITAL], box, transport=client._transport)
    event_id = c.publish(body(hospital_event(jurisdiction="atlantis")))
    assert c.drain(deadline_s=5).rejected == 1
    [item] = box.items("rejected")
    assert item.event_id == event_id and "invalid_event" in (item.answer or "")
    assert box.requeue(event_id, body(hospital_event(event_id=event_id)))
    assert c.drain(deadline_s=5).sent == 1


def test_wrong_token_keeps_everything_pending(client: TestClient, tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    c = IntakeClient("http://testserver", "rb_nobody_wrong-secret-0000000", box, transport=client._transport)
    c.publish(body(hospital_event()))
    with pytest.raises(ClientAuthError):
        c.drain(deadline_s=1)
    assert box.counts()["pending"] == 1


def test_network_errors_are_retried(tmp_path: Path) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] < 3:
            raise httpx.ConnectError("offline")
        return httpx.Response(202, json={"event_id": json.loads(request.content)["event_id"]})

    box = Outbox(tmp_path / "o.sqlite")
    c = IntakeClient("http://x", "t", box, transport=httpx.MockTransport(handler), sleep=lambda s: None,
                     max_backoff_s=0.01)
    c.publish(body(hospital_event()))
    result = c.drain(deadline_s=10)
    assert result.sent == 1 and result.retries == 2 and calls["n"] == 3
