"""The broadcast service on the real broker: refusals, CAP validity, the public set, the growing
circle, a restart, drills, and a cancel that reaches every recipient and empties the feed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bus.kafka import clients
from bus.settings import KafkaSettings
from services.broadcast.cap import CAP_NS, validate
from tests.unit.broadcast.broadcast_events import SECRETS, assert_public, release_dict, report_dict, resolved_dict
from topics.catalog import BROADCAST_CHANNELS, BROADCAST_REFUSALS, EVENTS, broadcast_topic

from .broadcast_process import SHORT_SCHEDULE, BroadcastProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NS = {"cap": CAP_NS}
CHANNELS = set(BROADCAST_CHANNELS)


@dataclass(frozen=True)
class Received:
    topic: str
    key: str
    value: bytes
    produced_at: float  # the record's timestamp (when the service sent it), epoch seconds

    @property
    def channel(self) -> str:
        return self.topic.removeprefix("broadcast.")

    def cap(self, path: str) -> list[str]:
        return [e.text or "" for e in ET.fromstring(self.value).findall(path, NS)]

    @property
    def msg_type(self) -> str:
        return self.cap("cap:msgType")[0]

    @property
    def identifier(self) -> str:
        return self.cap("cap:identifier")[0]

    @property
    def radius(self) -> int:
        return int(self.cap("cap:info/cap:area/cap:circle")[0].rsplit(" ", 1)[1])

    @property
    def references(self) -> list[str]:
        refs = self.cap("cap:references")
        return [r.split(",")[1] for r in refs[0].split()] if refs else []


class Tap:
    """Everything on the broadcast channels and the refusals topic, read from the beginning."""

    def __init__(self, kafka: KafkaSettings) -> None:
        topics = [broadcast_topic(c).name for c in BROADCAST_CHANNELS] + [BROADCAST_REFUSALS.name]
        self.consumer: AIOKafkaConsumer = clients.consumer(kafka, *topics, group_id=None)
        self.records: list[Received] = []

    async def until(self, predicate: Callable[[list[Received]], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; got "
                                     f"{[(r.topic, r.value[:80]) for r in self.records]}")
            batch = await self.consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                self.records += [Received(r.topic, (r.key or b"").decode(), r.value or b"", r.timestamp / 1000)
                                 for r in recs]

    def cap(self, case: uuid.UUID, msg_type: str | None = None) -> list[Received]:
        return [r for r in self.records if r.topic != BROADCAST_REFUSALS.name and r.key == str(case)
                and (msg_type is None or r.msg_type == msg_type)]

    def refusals(self, case: uuid.UUID) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.records if r.topic == BROADCAST_REFUSALS.name and r.key == str(case)]


async def _publish(producer: AIOKafkaProducer, *events: dict[str, Any]) -> None:
    for e in events:
        await producer.send_and_wait(EVENTS.name, key=e["case_id" if "case_id" in e else "event_id"].encode(),
                                     value=json.dumps(e).encode())


async def _ready(service: BroadcastProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=service.url, timeout=2) as http:
        while time.monotonic() < deadline:
            assert service.process is not None and service.process.poll() is None, service.log
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"broadcast service not ready after {timeout}s:\n{service.log}")


def _timeline(records: list[Received], t0: float, log: str) -> str:
    """For a failure message: what each channel got, when, and the service's log."""
    lines = [f"{r.produced_at - t0:7.2f}s {r.channel:16} {r.msg_type:7} {r.identifier[:8]} "
             f"refs={[x[:8] for x in r.references]}" for r in records]
    return "\n".join([*lines, log[-4000:]])


def _channels(records: list[Received]) -> set[str]:
    return {r.channel for r in records}


@pytest.fixture
async def io(kafka: KafkaSettings) -> Any:
    producer = clients.producer(kafka)
    tap = Tap(kafka)
    await producer.start()
    await tap.consumer.start()
    try:
        yield producer, tap
    finally:
        await tap.consumer.stop()
        await producer.stop()


async def test_releases_by_non_police_or_without_consent_are_refused(
        broadcast_service: BroadcastProcess, io: tuple[AIOKafkaProducer, Tap]) -> None:
    producer, tap = io
    await _ready(broadcast_service)
    case = uuid.uuid4()
    by_civil = release_dict(case, agency="civil_affairs")
    by_parent = release_dict(case, agency=None)
    no_consent = release_dict(case, agency="police", consent=False)
    cancel_by_civil = resolved_dict(case, agency="civil_affairs")
    await _publish(producer, report_dict(case, last_seen_at=dt.datetime.now(dt.UTC)),
                   by_civil, by_parent, no_consent, cancel_by_civil)
    await tap.until(lambda _: len(tap.refusals(case)) == 4, 30, "four refusals")
    reasons = {r["event_id"]: (r["reason"], r["detail"]) for r in tap.refusals(case)}
    assert reasons[by_civil["event_id"]][0] == "not_police"
    assert "published by civil_affairs" in reasons[by_civil["event_id"]][1]
    assert reasons[by_parent["event_id"]][0] == "not_police"
    assert reasons[no_consent["event_id"]] == (
        "no_guardian_consent", "the guardian's consent is required before a public release (guardian_consent is false)")
    assert reasons[cancel_by_civil["event_id"]][0] == "cancel_not_police"

    # The channels work: a police release with consent, published after the refused ones (same
    # case, same partition, handled in order), is the first and only broadcast of the case.
    await _publish(producer, release_dict(case))
    await tap.until(lambda _: _channels(tap.cap(case)) == CHANNELS, 30, "the alert on every channel")
    assert [r.msg_type for r in tap.cap(case)] == ["Alert"] * 3

    async with httpx.AsyncClient(timeout=5) as http:
        metrics = (await http.get(f"http://127.0.0.1:{broadcast_service.metrics_port}/metrics")).text
    assert 'referral_bus_broadcast_refusals_total{reason="not_police"} 2.0' in metrics
    assert 'referral_bus_broadcast_refusals_total{reason="no_guardian_consent"} 1.0' in metrics
    assert 'referral_bus_broadcast_refusals_total{reason="cancel_not_police"} 1.0' in metrics
    assert 'referral_bus_broadcasts_total{message_type="Alert"} 1.0' in metrics


async def test_alert_grows_on_schedule_survives_a_restart_and_cancels_everywhere(
        broadcast_service: BroadcastProcess, io: tuple[AIOKafkaProducer, Tap]) -> None:
    producer, tap = io
    await _ready(broadcast_service)
    case = uuid.uuid4()
    last_seen = dt.datetime.now(dt.UTC)
    t0 = last_seen.timestamp()
    await _publish(producer, report_dict(case, last_seen_at=last_seen), release_dict(case, at=last_seen))

    await tap.until(lambda _: _channels(tap.cap(case, "Alert")) == CHANNELS, 30, "the alert on every channel")
    alert = tap.cap(case, "Alert")[0]
    async with httpx.AsyncClient(base_url=broadcast_service.url, timeout=5) as http:
        atom = (await http.get("/feed/cap.atom")).text
        assert f"/cap/{alert.identifier}.xml" in atom
        doc = await http.get(f"/cap/{alert.identifier}.xml")
        assert doc.status_code == 200 and doc.content == alert.value

    def updates() -> list[Received]:
        return tap.cap(case, "Update")

    # First growth, on schedule: sent when the time since last seen crosses a step's `within`.
    await tap.until(lambda _: _channels(updates()) == CHANNELS, 20, "the first update on every channel")
    first = updates()[0]
    step = next(i for i, s in enumerate(SHORT_SCHEDULE) if s["radius_km"] == first.radius)
    boundary = t0 + SHORT_SCHEDULE[step - 1]["within"]
    assert boundary - 0.2 <= first.produced_at <= boundary + 2.0, (first.produced_at - t0, step)
    assert first.radius > alert.radius and first.references == [alert.identifier]

    # Crash and restart: the state comes back from its compacted topic.
    broadcast_service.kill()
    broadcast_service.start()
    await _ready(broadcast_service)
    await tap.until(lambda _: len({u.identifier for u in updates()}) >= 2 and _channels(
        [u for u in updates() if u.identifier != first.identifier]) == CHANNELS, 30, "the next update after restart")
    second = next(u for u in updates() if u.identifier != first.identifier)
    assert second.radius > first.radius
    assert second.references == [alert.identifier, first.identifier]  # it remembers what it sent
    assert second.produced_at >= t0 + SHORT_SCHEDULE[step]["within"] - 0.2
    assert len(tap.cap(case, "Alert")) == 3, "the restart must not broadcast the alert again"

    # The child is found: a Cancel to every channel that received the alert, referencing all.
    await _publish(producer, resolved_dict(case, at=dt.datetime.now(dt.UTC)))
    await tap.until(lambda _: _channels(tap.cap(case, "Cancel")) == CHANNELS, 30, "the cancel on every channel")
    cancel = tap.cap(case, "Cancel")[0]
    # A crash between publishing and recording it re-sends the same message (at-least-once):
    # a byte-identical copy under the same identifier, which receivers drop.
    copies: dict[tuple[str, str], bytes] = {}
    for r in tap.cap(case):
        assert copies.setdefault((r.channel, r.identifier), r.value) == r.value
    sent_before = list(dict.fromkeys(
        r.identifier for r in tap.cap(case) if r.msg_type != "Cancel" and r.channel == "media"))
    assert cancel.references == sent_before, _timeline(tap.cap(case), t0, broadcast_service.log)
    async with httpx.AsyncClient(base_url=broadcast_service.url, timeout=5) as http:
        atom = (await http.get("/feed/cap.atom")).text
        assert "<entry>" not in atom and "李小红" not in atom
        for identifier in {r.identifier for r in tap.cap(case)}:
            assert (await http.get(f"/cap/{identifier}.xml")).status_code == 404

    # Every message: valid CAP 1.2, expires, nothing beyond the public set.
    for r in tap.cap(case):
        validate(r.value)
        assert r.cap("cap:info/cap:expires")
        assert_public(r.value.decode())
    assert SECRETS["id_number"] not in broadcast_service.log and "李小红" not in broadcast_service.log


async def test_drills_go_only_to_channels_that_accept_exercises(
        broadcast_service: BroadcastProcess, io: tuple[AIOKafkaProducer, Tap]) -> None:
    producer, tap = io
    await _ready(broadcast_service)
    drill, real = uuid.uuid4(), uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    await _publish(producer, report_dict(drill, last_seen_at=now, exercise=True), release_dict(drill, exercise=True))
    await tap.until(lambda _: _channels(tap.cap(drill)) == {"media", "cyberspace"}, 30, "the drill on media and apps")
    assert {r.cap("cap:status")[0] for r in tap.cap(drill)} == {"Exercise"}
    async with httpx.AsyncClient(base_url=broadcast_service.url, timeout=5) as http:
        assert tap.cap(drill)[0].identifier not in (await http.get("/feed/cap.atom")).text

    # A real alert published after the drill was seen reaches outdoor screens after anything the
    # drill could have put there: so outdoor screens never got the drill.
    await _publish(producer, report_dict(real, last_seen_at=now), release_dict(real))
    await tap.until(lambda _: "outdoor_screens" in _channels(tap.cap(real)), 30, "the real alert on outdoor screens")
    assert "outdoor_screens" not in _channels(tap.cap(drill))
    assert {r.cap("cap:status")[0] for r in tap.cap(real)} == {"Actual"}

    await _publish(producer, resolved_dict(drill, exercise=True))
    await tap.until(lambda _: len(tap.cap(drill, "Cancel")) == 2, 30, "the drill's cancel")
    assert _channels(tap.cap(drill, "Cancel")) == {"media", "cyberspace"}
