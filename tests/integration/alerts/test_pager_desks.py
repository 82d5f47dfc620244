"""Desks of one command centre on the real broker: two pagers of the same agency each show every
alert and re-send (neither takes pages from the other), and a pager survives a broker outage,
saying so in one line each way, and goes on paging when the broker is back."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bus.local_broker import LocalBroker
from bus.settings import KafkaSettings
from rules.catalog import COMMAND_CENTER
from rules.deadlines import Deadlines
from schemas.alerts import alert_id_for, dump
from schemas.events import parse_event_obj
from services.alerts import lifecycle
from services.router.alert import police_alert
from topics.catalog import ALERT_STATES

from ..conftest import publish as publish_bytes
from .alerts_helpers import SHORT, publish, report, wait_until
from .test_alerts import _start

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _pages(desk: Any) -> list[dict[str, Any]]:
    """The JSON pages a desk printed so far (its log has its stderr lines too)."""
    return [json.loads(line) for line in desk.log.splitlines() if line.startswith("{")]


def _alert_attempts(desk: Any, alert_ids: set[str]) -> set[tuple[str, int]]:
    return {(p["alert_id"], p["attempt"]) for p in _pages(desk) if p.get("alert_id") in alert_ids and "attempt" in p}


def _showing(desk: Any, alert_ids: set[str], attempts: set[tuple[str, int]]) -> Callable[[], bool]:
    """A poll: has `desk` shown each of `attempts` (alert id, attempt) yet?"""
    return lambda: attempts <= _alert_attempts(desk, alert_ids)


def test_two_desks_of_one_command_centre_each_show_every_alert_and_re_send(
        kafka: KafkaSettings, spawn: Callable[..., Any]) -> None:
    _start(kafka, spawn, str(SHORT))
    desks = [spawn("page", "--agency", COMMAND_CENTER, "--jurisdiction", "xian", "--json") for _ in range(2)]
    reports = [report() for _ in range(4)]
    publish(kafka, reports)
    ids = {str(alert_id_for(uuid.UUID(e["event_id"]))) for e in reports}
    first = {(i, 1) for i in ids}
    for n, desk in enumerate(desks, 1):
        wait_until(_showing(desk, ids, first), 60, f"desk {n} to show all four alerts")
    # Nobody answers: each alert is re-sent, and the re-send reaches both desks too.
    resent = {(i, 2) for i in ids}
    for n, desk in enumerate(desks, 1):
        wait_until(_showing(desk, ids, resent), 60, f"desk {n} to show all four re-sends")
    for desk in desks:
        attempts = [(p["alert_id"], p["attempt"]) for p in _pages(desk) if p.get("alert_id") in ids]
        assert len(attempts) == len(set(attempts)), "each page once per desk"
    # Whichever started first is desk 1; the other says it is desk 2.
    assert sorted("desk 2 of police.command_center" in desk.log for desk in desks) == [False, True]


def _alert_state(jurisdiction: str = "xian") -> tuple[str, bytes]:
    alert = police_alert(parse_event_obj(report(jurisdiction=jurisdiction)), [], Deadlines.load())
    assert alert is not None
    return str(alert.alert_id), dump(lifecycle.track_alert(alert))


def test_a_pager_rides_out_a_broker_outage_in_one_line_each_way(
        broker: LocalBroker, kafka: KafkaSettings, spawn: Callable[..., Any]) -> None:
    # Only the pager runs: it renders the states the alerts service publishes, written here directly.
    desk = spawn("page", "--agency", COMMAND_CENTER, "--json")
    before, before_state = _alert_state()
    publish_bytes(kafka, [before_state], topic=ALERT_STATES.name)
    wait_until(lambda: (before, 1) in _alert_attempts(desk, {before}), 30, "the first alert paged")

    broker.freeze()
    try:
        # Several of the pager's broker timeouts and reconnection attempts; aiokafka alone would
        # log an error for every retry meanwhile.
        wait_until(lambda: "unreachable since" in desk.log, 30, "the pager to say the broker is unreachable")
        time.sleep(15)
        assert desk.process is not None and desk.process.poll() is None, desk.log
    finally:
        broker.thaw()
    wait_until(lambda: "reachable again" in desk.log, 60, "the pager to say the broker is back")
    after, after_state = _alert_state()
    publish_bytes(kafka, [after_state], topic=ALERT_STATES.name)
    wait_until(lambda: (after, 1) in _alert_attempts(desk, {after}), 30, "an alert paged after the outage")

    assert desk.process is not None and desk.process.poll() is None, desk.log
    lines = [line for line in desk.log.splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith("{")]
    assert len([line for line in said if "unreachable since" in line]) == 1, said
    assert len([line for line in said if "reachable again" in line]) == 1, said
    assert not [line for line in said if re.search(r"Traceback|Error|ERROR|aiokafka|Unable", line)
                and "unreachable since" not in line], said
    assert len(said) <= 3, said
    assert [p["alert_id"] for p in _pages(desk) if "attempt" in p] == [before, after], "each page once"


def test_a_pager_outlives_a_broker_that_is_gone(broker: LocalBroker, kafka: KafkaSettings,
                                                 spawn: Callable[..., Any]) -> None:
    desk = spawn("page", "--agency", COMMAND_CENTER, "--json")
    alert_id, state = _alert_state()
    publish_bytes(kafka, [state], topic=ALERT_STATES.name)
    wait_until(lambda: (alert_id, 1) in _alert_attempts(desk, {alert_id}), 30, "the alert paged")
    broker.stop()  # connections refused from now on, not only unanswered
    wait_until(lambda: "unreachable since" in desk.log, 30, "the pager to say the broker is unreachable")
    time.sleep(15)
    assert desk.process is not None and desk.process.poll() is None, desk.log
    said = [line for line in desk.log.splitlines() if line.strip() and not line.startswith("{")]
    assert len(said) == 1 and "unreachable since" in said[0], said
