"""The duty officer's pager grouped by case, on the real broker: one ALERT per case, further reports
and linked clues as lines under it, and nothing about the case once the child is found, but for a
new report raised after the resolution: a marked ALERT, re-sent as usual."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bus.settings import KafkaSettings
from rules.catalog import COMMAND_CENTER
from schemas.alerts import Escalation, alert_id_for, escalation_id_for
from schemas.referrals import Referral
from topics.catalog import ESCALATIONS, POLICE_ALERTS, referral_topic_name

from ..conftest import publish as publish_bytes
from .alerts_helpers import (
    SHORT,
    alerts,
    case_changes,
    cli,
    clue_event,
    publish,
    read,
    report,
    resolution,
    states,
    wait_until,
)
from .test_alerts import _start

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def _page(env: dict[str, str]) -> list[str]:
    """One pager run, as the command centre's duty officer sees it (text, not JSON)."""
    out = cli(env, "page", "--agency", COMMAND_CENTER, "--jurisdiction", "xian", "--no-follow", "--idle-exit", "2")
    return [line for line in out.splitlines() if line.strip()]


def test_pager_groups_reports_and_clues_under_the_case_and_stops_once_closed(
        kafka: KafkaSettings, spawn: Callable[..., Any], service_env: dict[str, str]) -> None:
    _start(kafka, spawn, str(SHORT))
    first = report()
    case_id = first["event_id"]
    again = {**report(), "case_id": case_id}  # a further report of the same child: same case, new event
    a1, a2 = (str(alert_id_for(uuid.UUID(e["event_id"]))) for e in (first, again))
    publish(kafka, [first])
    wait_until(lambda: a1 in states(kafka), 40, "the case's alert tracked")
    publish(kafka, [again])
    wait_until(lambda: [c for c in case_changes(kafka) if c.change == "report_grouped"], 30, "the report grouped")
    found = clue_event()
    publish(kafka, [found])
    wait_until(lambda: [c for c in case_changes(kafka) if c.change == "clue_linked"], 30, "the clue linked")
    wait_until(lambda: a2 in states(kafka), 20, "the further report's alert tracked")
    assert states(kafka)[a2].status == "grouped"

    # The clue's referral (to the police) is tracked grouped under the case, and `cases` lists it there.
    def clue_referral() -> Any:
        refs = [Referral.model_validate_json(v) for v in read(kafka, referral_topic_name("police"))]
        ids = [str(r.referral_id) for r in refs if str(r.event_id) == found["event_id"]]
        now = states(kafka)
        return [now[i] for i in ids if i in now and now[i].grouped]

    (grouped,) = wait_until(clue_referral, 30, "the clue's referral grouped under the case")
    assert str(grouped.case_id) == case_id and grouped.next_deadline is None
    rows = [json.loads(line) for line in cli(service_env, "cases", "--json").splitlines()]
    (row,) = [r for r in rows if r["case_id"] == case_id]
    (listed,) = row["clues"]
    assert listed["event_id"] == found["event_id"] and listed["referrals"][0]["agency"] == "police"

    # Two reports and a clue: one ALERT, one grouped line, one CLUE line with the match reason.
    lines = [line for line in _page(service_env) if case_id in line]
    (alert_line,) = [line for line in lines if line.startswith("ALERT")]
    assert alert_line.endswith(f"alert {a1} case {case_id}")
    assert not [line for line in lines if a2 in line and "ALERT" in line]
    grouped_lines = [line for line in lines if line.startswith("GROUPED")]
    assert len(grouped_lines) == 1 and f"under case {case_id}" in grouped_lines[0]
    assert again["event_id"] in grouped_lines[0]
    clue_lines = [line for line in lines if line.startswith("CLUE")]
    assert len(clue_lines) == 1 and clue_lines[0].startswith(f"CLUE for case {case_id}: ")
    assert "place 西安北站候车室" in clue_lines[0]

    # The child is found. Pages already in flight then (a re-send, an escalation) are dropped.
    publish(kafka, [resolution(case_id, COMMAND_CENTER)])
    wait_until(lambda: [c for c in case_changes(kafka) if str(c.case_id) == case_id and c.status == "closed"], 30,
               "the case closed")
    wait_until(lambda: states(kafka)[a1].status == "closed", 20, "the case's alert closed")
    resent = next(a for a in alerts(kafka) if str(a.alert_id) == a1).model_copy(update={"attempt": 7})
    in_flight = Escalation(escalation_id=escalation_id_for(uuid.UUID(a1), 7), referral_id=uuid.UUID(a1),
                           case_id=uuid.UUID(case_id), action="resend", step=7, level=0, target_agency=COMMAND_CENTER,
                           target_jurisdiction="xian", reason="no acknowledgement", decided_at=dt.datetime.now(dt.UTC),
                           ack_deadline=None)
    publish_bytes(kafka, [resent.model_dump_json().encode()], topic=POLICE_ALERTS.name)
    publish_bytes(kafka, [in_flight.model_dump_json().encode()], topic=ESCALATIONS.name)
    after = [line for line in _page(service_env) if case_id in line or a1 in line or a2 in line]
    assert len(after) == 1 and after[0].startswith(f"CASE CLOSED case {case_id}"), after

    # The child goes missing again: a new report naming the case, raised after the resolution. The
    # alerts service keeps its alert live (re-sent and escalated when unanswered); the pager pages it
    # as an ALERT marked as after the resolution, while a re-send of the old alert still shows nothing.
    (closed,) = [c for c in case_changes(kafka) if str(c.case_id) == case_id and c.status == "closed"][-1:]
    assert closed.resolved_at is not None
    missing_again = {**report(), "case_id": case_id}
    a3 = str(alert_id_for(uuid.UUID(missing_again["event_id"])))
    publish(kafka, [missing_again])
    wait_until(lambda: a3 in states(kafka), 30, "the new report's alert tracked")
    assert states(kafka)[a3].status == "sent", "live: not grouped, not closed"
    publish_bytes(kafka, [resent.model_copy(update={"attempt": 8}).model_dump_json().encode()],
                  topic=POLICE_ALERTS.name)
    marker = (f"case {case_id} was resolved at {closed.resolved_at.isoformat(timespec='seconds')}: "
              "this was raised after it")
    lines = [line for line in _page(service_env) if case_id in line or a1 in line or a2 in line or a3 in line]
    (new_alert,) = [line for line in lines if line.startswith("ALERT")]
    assert f"alert {a3} case {case_id}" in new_alert and new_alert.endswith(marker), new_alert
    assert all(a3 in line for line in lines), lines  # its re-sends may be there already; nothing else

    # Its re-send pages as usual; a restarted pager pages nothing else about the case again.
    wait_until(lambda: [a for a in alerts(kafka) if str(a.alert_id) == a3 and a.attempt == 2], 60,
               "the new alert re-sent")
    first_a3 = next(a for a in alerts(kafka) if str(a.alert_id) == a3 and a.attempt == 1)
    publish_bytes(kafka, [resent.model_copy(update={"attempt": 9}).model_dump_json().encode(),
                          first_a3.model_dump_json().encode()], topic=POLICE_ALERTS.name)
    paged_again = [line for line in _page(service_env) if case_id in line or a1 in line or a2 in line or a3 in line]
    assert all(a3 in line and not line.startswith("ALERT") for line in paged_again), paged_again
    resent_lines = [line for line in lines + paged_again if line.startswith("RE-SENT ALERT (attempt 2)")]
    assert len(resent_lines) == 1 and a3 in resent_lines[0] and marker not in resent_lines[0]
