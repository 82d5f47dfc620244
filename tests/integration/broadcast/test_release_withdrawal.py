"""A second release and a withdrawn consent, on the real broker: a new police release of an active
broadcast is an Update with its details (a copy of it is dropped), and the guardian withdrawing
consent cancels the broadcast on every channel that had it, empties the feed, is counted, and
survives a restart (nothing is broadcast again)."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from bus.settings import KafkaSettings
from services.broadcast.cap import validate
from tests.unit.broadcast.broadcast_events import assert_public, release_dict, report_dict
from topics.catalog import BROADCAST_CHANNELS

from ..alerts.alerts_helpers import publish, wait_until
from .broadcast_process import SHORT_SCHEDULE, BroadcastProcess, Cap, caps, feed_text, is_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

CHANNELS = set(BROADCAST_CHANNELS)
NEW_CONTACT = "029-8888-1234"


def _rereleases(messages: list[Cap]) -> list[Cap]:
    return [c for c in messages if c.msg_type == "Update" and NEW_CONTACT.encode() in c.xml
            and b"Updated by the police" in c.xml]


def _metric(service: BroadcastProcess, series: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5).text
    line = next(line for line in text.splitlines() if line.startswith(series + " "))
    return float(line.rsplit(" ", 1)[1])


def test_second_release_updates_and_withdrawn_consent_cancels_everywhere(
        kafka: KafkaSettings, broadcast_service: BroadcastProcess) -> None:
    wait_until(lambda: is_ready(broadcast_service), 30, "the broadcast service ready")
    case = uuid.uuid4()
    last_seen = dt.datetime.now(dt.UTC)
    publish(kafka, [report_dict(case, last_seen_at=last_seen), release_dict(case, at=last_seen)])
    wait_until(lambda: {c.channel for c in caps(kafka, case) if c.msg_type == "Alert"} == CHANNELS, 30,
               "the alert on every channel")
    alert = next(c for c in caps(kafka, case) if c.msg_type == "Alert")

    # A new release by another police unit: an Update with the new contact, never a second Alert.
    second: dict[str, Any] = release_dict(case, agency="police.local_station", at=dt.datetime.now(dt.UTC),
                                          contact=NEW_CONTACT)
    publish(kafka, [second])
    wait_until(lambda: {c.channel for c in _rereleases(caps(kafka, case))} == CHANNELS, 30,
               "the update with the new contact on every channel")
    update = _rereleases(caps(kafka, case))[0]
    assert alert.identifier.encode() in update.xml
    wait_until(lambda: f"/cap/{update.identifier}.xml" in feed_text(broadcast_service) or None, 10,
               "the feed serving the update")
    assert NEW_CONTACT.encode() in httpx.get(f"{broadcast_service.url}/cap/{update.identifier}.xml", timeout=5).content

    # A copy of that release (same event_id) and then the guardian's withdrawal, as police publish it.
    withdrawal = release_dict(case, consent=False, at=dt.datetime.now(dt.UTC))
    publish(kafka, [second, withdrawal])
    wait_until(lambda: {c.channel for c in caps(kafka, case) if c.msg_type == "Cancel"} == CHANNELS, 30,
               "the cancel on every channel that had the alert")
    cancels = [c for c in caps(kafka, case) if c.msg_type == "Cancel"]
    assert len({c.identifier for c in cancels}) == 1
    before = [c for c in caps(kafka, case) if c.msg_type != "Cancel" and c.channel == "media"]
    for c in cancels:
        for earlier in before:
            assert earlier.identifier.encode() in c.xml  # references every earlier message of the alert
        assert b"<responseType>None</responseType>" in c.xml  # not AllClear: the child is still missing
    assert len([c for c in _rereleases(caps(kafka, case)) if c.channel == "media"]) == 1, "the copy was dropped"
    assert len([c for c in caps(kafka, case) if c.msg_type == "Alert"]) == 3

    # Nothing about the child is served any more.
    wait_until(lambda: "<entry>" not in feed_text(broadcast_service), 10, "the feed emptied")
    assert "李小红" not in feed_text(broadcast_service)
    for identifier in {c.identifier for c in caps(kafka, case)}:
        assert httpx.get(f"{broadcast_service.url}/cap/{identifier}.xml", timeout=5).status_code == 404

    # Counted: one alert, one cancel, one withdrawal.
    assert _metric(broadcast_service,
                   'referral_bus_broadcast_withdrawals_total{reason="guardian_consent_withdrawn"}') == 1.0
    assert _metric(broadcast_service, 'referral_bus_broadcasts_total{message_type="Cancel"}') == 1.0
    assert _metric(broadcast_service, 'referral_bus_broadcasts_total{message_type="Alert"}') == 1.0
    assert _metric(broadcast_service, "referral_bus_broadcast_active_alerts") == 0.0

    # A restart restores the withdrawn state: no Update when the next circle is due, nothing served.
    broadcast_service.kill()
    broadcast_service.start()
    wait_until(lambda: is_ready(broadcast_service), 30, "the broadcast service ready again")
    widest = SHORT_SCHEDULE[-2]["within"]
    assert isinstance(widest, int)
    time.sleep(max(0.0, last_seen.timestamp() + widest + 2 - time.time()))
    after = caps(kafka, case)
    media = [c.msg_type for c in after if c.channel == "media"]
    assert "Cancel" in media and media[media.index("Cancel") + 1:] == [], media
    assert {c.msg_type for c in after} == {"Alert", "Update", "Cancel"}
    assert "<entry>" not in feed_text(broadcast_service)
    for c in after:
        validate(c.xml)
        assert_public(c.xml.decode())
    assert json.loads(httpx.get(f"{broadcast_service.url}/healthz", timeout=5).text)["status"] == "ok"
