"""The child is found: on the real broker, with the router, the alerts service and the broadcast
service running, one police `case_resolved` cancels the public broadcast on every channel that had
it, empties the feed, and closes every alert and referral of the case in the alerts service, as
`referral-bus cases` shows them, including those that arrive after the resolution."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bus.settings import KafkaSettings
from rules.engine import load_rulebook, route
from schemas.alerts import alert_id_for
from schemas.events import parse_event_obj
from services.broadcast.cap import validate
from tests.unit.broadcast.broadcast_events import assert_public, release_dict, report_dict, resolved_dict
from topics.catalog import BROADCAST_CHANNELS

from ..alerts.alerts_helpers import SHORT, as_agency, cli, publish, start_answering_intake, states, wait_until
from ..alerts.test_alerts import _start
from .broadcast_process import BroadcastProcess, Cap, caps, feed_text, is_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _case_row(env: dict[str, str], case: uuid.UUID) -> dict[str, Any] | None:
    """The case as a user lists it: `referral-bus cases --all --json`."""
    rows = [json.loads(line) for line in cli(env, "cases", "--all", "--json").splitlines() if line.startswith("{")]
    return next((r for r in rows if r["case_id"] == str(case)), None)


def _referral_ids(*events: dict[str, Any]) -> set[str]:
    """The referrals the router sends for these events (ids are deterministic: same rule book)."""
    book = load_rulebook()
    return {str(r.referral_id) for e in events for r in route(parse_event_obj(e), book)}


def test_case_resolved_cancels_the_broadcast_and_closes_every_duty_of_the_case(
        kafka: KafkaSettings, spawn: Callable[..., Any], service_env: dict[str, str],
        broadcast_service: BroadcastProcess) -> None:
    _start(kafka, spawn, str(SHORT))
    wait_until(lambda: is_ready(broadcast_service), 30, "the broadcast service ready")
    case = uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    report = report_dict(case, last_seen_at=now - dt.timedelta(minutes=10))  # reported now
    release = release_dict(case, at=now)
    # The railway's interception notice at a transport hub, naming the case.
    notice = {
        "event_id": str(uuid.uuid4()), "kind": "transport_hub_suspected_trafficking", "jurisdiction": "xian",
        "occurred_at": now.isoformat(), "reported_at": now.isoformat(), "case_id": str(case),
        "reporter": {"agency": "railway", "role": "railway_staff"}, "person": {"age": 6, "sex": "female"},
        "location": {"place": "西安北站"},
    }
    publish(kafka, [report, release, notice])

    # The public broadcast: the Alert on every channel and in the feed.
    def alerted() -> list[Cap]:
        sent = [c for c in caps(kafka, case) if c.msg_type == "Alert"]
        return sent if {c.channel for c in sent} == set(BROADCAST_CHANNELS) else []

    alerts_sent = wait_until(alerted, 40, "the CAP alert on every channel")
    alert_identifier = alerts_sent[0].identifier
    wait_until(lambda: alert_identifier in feed_text(broadcast_service), 10, "the alert in the Atom feed")
    assert "李小红" in feed_text(broadcast_service)

    # Every alert and referral of the case tracked, some of them answered.
    alert_id = str(alert_id_for(case))
    duties = {alert_id} | _referral_ids(report, release, notice)
    wait_until(lambda: duties <= set(states(kafka)), 40, "every alert and referral of the case tracked")
    radio_tv = next(k for k, s in states(kafka).items() if s.agency == "radio_tv" and k in duties)
    url = start_answering_intake(spawn)
    cli(as_agency(service_env, url, "police.command_center"), "ack", alert_id, "--agency", "police.command_center")
    cli(as_agency(service_env, url, "radio_tv"), "accept", radio_tv, "--agency", "radio_tv")
    wait_until(lambda: (s := states(kafka))[alert_id].status == "acknowledged" and s[radio_tv].status == "accepted",
               20, "the answers recorded")
    lead = states(kafka)[alert_id].twin_id
    assert lead is not None and str(lead) in duties
    wait_until(lambda: states(kafka)[str(lead)].status == "acknowledged", 20, "the lead referral acknowledged")
    before = _case_row(service_env, case)
    assert before is not None and before["status"] == "open" and before["open"] == len(duties)

    # The police resolve the case.
    resolution = resolved_dict(case, agency="police.command_center", at=dt.datetime.now(dt.UTC))
    publish(kafka, [resolution])

    # A Cancel reaches every channel that received the alert, referencing it; the feed forgets the child.
    def cancelled() -> list[Cap]:
        cancels = [c for c in caps(kafka, case) if c.msg_type == "Cancel"]
        return cancels if {c.channel for c in cancels} >= {a.channel for a in alerts_sent} else []

    cancels = wait_until(cancelled, 40, "the CAP cancel on every channel that had the alert")
    assert {c.channel for c in cancels} == {a.channel for a in alerts_sent}
    for c in cancels:
        assert alert_identifier.encode() in c.xml
    wait_until(lambda: "<entry>" not in feed_text(broadcast_service), 10, "the feed emptied")
    assert "李小红" not in feed_text(broadcast_service)
    for identifier in {c.identifier for c in caps(kafka, case)}:
        assert httpx.get(f"{broadcast_service.url}/cap/{identifier}.xml", timeout=5).status_code == 404
    for c in caps(kafka, case):
        validate(c.xml)
        assert_public(c.xml.decode())

    # A second notice reported before the resolution but published after it (topics are not
    # ordered against each other): its referrals are stored closed on arrival.
    late_notice = {**notice, "event_id": str(uuid.uuid4())}
    publish(kafka, [late_notice])
    duties |= _referral_ids(late_notice, resolution)

    def all_closed() -> dict[str, Any] | None:
        row = _case_row(service_env, case)
        if row is None or row["status"] != "closed" or not duties <= {d["id"] for d in row["duties"]}:
            return None
        return row if all(d["status"] == "closed" for d in row["duties"] if d["id"] in duties) else None

    try:
        row = wait_until(all_closed, 40, "every alert and referral of the case closed")
    except AssertionError:
        raise AssertionError(f"not closed: {_case_row(service_env, case)}") from None
    assert row["open"] == 0 and row["alert_state"] == "closed"
    status = json.loads(cli(service_env, "status", radio_tv))
    assert status["status"] == "closed" and status["history"][-1]["what"] == "closed"
