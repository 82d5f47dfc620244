"""The alerts service on the real broker, with the router and the alerts worker as subprocesses."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bus.settings import KafkaSettings
from rules.catalog import JOINT_OFFICE
from schemas.alerts import ReferralResponse, alert_id_for
from schemas.referrals import Referral
from services.alerts.cli import send_response
from topics.catalog import POLICE_ALERTS, referral_topic_name

from ..conftest import publish as publish_bytes
from .alerts_helpers import (
    RESTART,
    SHORT,
    alerts,
    as_agency,
    case_changes,
    cli,
    clue_event,
    escalations,
    publish,
    read,
    report,
    resolution,
    start_answering_intake,
    states,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _start(kafka: KafkaSettings, spawn: Callable[..., Any], deadlines_file: str) -> tuple[Any, Any]:
    """Router and alerts workers, ready: a warm-up report's alert is tracked. Deadlines count
    from the report, so test reports are published only once both workers consume."""
    env = {"REFERRAL_BUS_ALERTS_DEADLINES_FILE": deadlines_file, "REFERRAL_BUS_ALERTS_LAG_INTERVAL": "0"}
    router, worker = spawn("router", env=env), spawn("alerts", env=env)
    warm_up = report(jurisdiction="honghe")
    publish(kafka, [warm_up])
    alert_id = str(alert_id_for(uuid.UUID(warm_up["event_id"])))
    wait_until(lambda: alert_id in states(kafka), 45, "the workers to start")
    return router, worker


def test_alert_on_report_escalates_unless_acknowledged(kafka: KafkaSettings, spawn: Callable[..., Any],
                                                       service_env: dict[str, str]) -> None:
    _start(kafka, spawn, str(SHORT))
    ignored, answered, drill = report(), report(jurisdiction="yunyang"), report(exercise=True)
    # The ignored report is published twice: one alert, one tracked state.
    publish(kafka, [ignored, answered, drill, ignored])
    ids = {name: str(alert_id_for(uuid.UUID(e["event_id"]))) for name, e in
           (("ignored", ignored), ("answered", answered), ("drill", drill))}

    def tracked() -> Any:
        s = states(kafka)
        return s if all(i in s for i in ids.values()) else None

    wait_until(tracked, 40, "the three alerts tracked")
    def first_pages() -> Any:
        pages = [a for a in alerts(kafka) if a.attempt == 1 and str(a.alert_id) in ids.values()]
        return pages if {str(a.alert_id) for a in pages} == set(ids.values()) else None

    first = wait_until(first_pages, 10, "one alert per report on the police alert topic")
    assert {a.agency for a in first} == {"police.command_center"}
    assert next(a for a in first if str(a.alert_id) == ids["drill"]).exercise is True
    # Answered straight away on the responses topic, as any client may (the CLI is exercised below).
    asyncio.run(send_response(kafka, ReferralResponse(referral_id=uuid.UUID(ids["answered"]), answer="acknowledged",
                                                      agency="police.command_center")))

    def escalated_to_office() -> Any:
        return [e for e in escalations(kafka) if str(e.referral_id) == ids["ignored"] and e.level == 1]

    wait_until(escalated_to_office, 45, "the ignored alert escalated to the joint office")
    wait_until(lambda: states(kafka)[ids["ignored"]].level >= 1, 10, "the escalation recorded")
    esc = escalations(kafka)
    ignored_steps = sorted({(e.step, e.action, e.target_agency) for e in esc if str(e.referral_id) == ids["ignored"]})
    assert ignored_steps[:2] == [(1, "resend", "police.command_center"), (2, "escalate", JOINT_OFFICE)]
    # A re-sent alert keeps its id, with the next attempt number.
    resent = [a for a in alerts(kafka) if str(a.alert_id) == ids["ignored"] and a.attempt == 2]
    assert resent
    # The acknowledged alert was never re-sent nor escalated; the drill escalates, marked as one.
    assert not [e for e in esc if str(e.referral_id) == ids["answered"]]
    drill_esc = [e for e in esc if str(e.referral_id) == ids["drill"]]
    assert drill_esc and all(e.exercise for e in drill_esc)
    final = states(kafka)
    assert final[ids["answered"]].status == "acknowledged"
    assert final[ids["ignored"]].status == "sent" and final[ids["ignored"]].level >= 1
    # The lead referral of the acknowledged alert is acknowledged with it.
    twin = final[ids["answered"]].twin_id
    assert twin is not None
    wait_until(lambda: states(kafka).get(str(twin)) and states(kafka)[str(twin)].status == "acknowledged",
               20, "the lead referral acknowledged with its alert")
    status = json.loads(cli(service_env, "status", ids["answered"]))
    assert status["status"] == "acknowledged"
    # The command centre's terminal answers through the intake, with its token.
    centre = as_agency(service_env, start_answering_intake(spawn), "police.command_center")
    cli(centre, "done", ids["answered"], "--note", "child found at the station")
    wait_until(lambda: states(kafka)[ids["answered"]].status == "done", 20, "the alert marked done by the CLI")


def test_rejected_lead_referral_is_reassigned(kafka: KafkaSettings, spawn: Callable[..., Any],
                                              service_env: dict[str, str]) -> None:
    _start(kafka, spawn, str(SHORT))
    event = report()
    publish(kafka, [event])

    def lead() -> Any:
        for v in read(kafka, referral_topic_name("police.command_center")):
            r = Referral.model_validate_json(v)
            if str(r.event_id) == event["event_id"] and r.role == "lead":
                return r
        return None

    referral = wait_until(lead, 40, "the command centre's lead referral")
    wait_until(lambda: str(referral.referral_id) in states(kafka), 30, "the lead referral tracked")
    centre = as_agency(service_env, start_answering_intake(spawn), "police.command_center")
    cli(centre, "reject", str(referral.referral_id), "--reason", "outside our district",
        "--agency", "police.command_center")

    def reassigned() -> Any:
        return [Referral.model_validate_json(v) for v in read(kafka, referral_topic_name(JOINT_OFFICE))
                if Referral.model_validate_json(v).event_id == referral.event_id]

    (office,) = wait_until(reassigned, 30, "the re-assignment to the joint-conference office")
    assert office.role == "lead" and "outside our district" in office.action
    assert office.rule_id.endswith(".reassigned")
    alert_key = str(alert_id_for(referral.event_id))
    def alert_rejected() -> Any:
        now = states(kafka)
        return now if now[alert_key].status == "rejected" else None

    final = wait_until(alert_rejected, 20, "the alert rejected with its lead referral")
    assert final[str(referral.referral_id)].status == "rejected"
    assert final[str(referral.referral_id)].reassigned_to == office.referral_id
    # The alert was answered with its lead referral: nothing but the re-assignment follows.
    assert "reassign" in [e.action for e in escalations(kafka) if e.referral_id == referral.referral_id]


def test_clue_linked_to_the_open_case_not_the_closed_one(kafka: KafkaSettings, spawn: Callable[..., Any],
                                                         service_env: dict[str, str]) -> None:
    _start(kafka, spawn, str(SHORT))
    open_case, closed_case = report(), report()
    publish(kafka, [open_case, closed_case])
    wait_until(lambda: len({c.case_id for c in case_changes(kafka)}) == 3, 40, "two cases opened")
    publish(kafka, [resolution(closed_case["event_id"], "civil_affairs"),   # refused: not police
                    resolution(closed_case["event_id"], "police.command_center")])

    def closed() -> Any:
        return [c for c in case_changes(kafka) if str(c.case_id) == closed_case["event_id"] and c.status == "closed"]

    wait_until(closed, 30, "the case closed by the police")
    assert [c.change for c in case_changes(kafka) if str(c.case_id) == closed_case["event_id"]] == [
        "opened", "close_refused", "closed"]
    publish(kafka, [clue_event()])

    def linked() -> Any:
        return [c for c in case_changes(kafka) if c.change == "clue_linked"]

    (change,) = wait_until(linked, 30, "the clue linked")
    assert str(change.case_id) == open_case["event_id"]
    assert change.last_clue is not None and "place 西安北站候车室" in change.last_clue.reason
    # Once the child is found nothing more about its case is paged.
    closed_alert = str(alert_id_for(uuid.UUID(closed_case["event_id"])))
    assert states(kafka)[closed_alert].status == "closed"
    rows = [json.loads(line) for line in cli(service_env, "cases", "--json").splitlines()]
    rows = [r for r in rows if r["case_id"] in (open_case["event_id"], closed_case["event_id"])]
    assert [r["case_id"] for r in rows] == [open_case["event_id"]]
    assert rows[0]["clues"][0]["kind"] == "child_of_unknown_origin_found"


def test_sigkill_mid_stream_loses_nothing_and_keeps_timers(kafka: KafkaSettings, spawn: Callable[..., Any]) -> None:
    router, worker = _start(kafka, spawn, str(RESTART))
    before = [report() for _ in range(10)]
    publish(kafka, before)
    expected = {str(alert_id_for(uuid.UUID(e["event_id"]))) for e in before}
    wait_until(lambda: expected <= set(states(kafka)), 40, "the first alerts tracked")
    # Kill both workers while the next reports stream in; the first alerts' deadlines are pending.
    after = [report() for _ in range(10)]
    publish(kafka, after[:5], pace=0.05)
    worker.kill()
    router.kill()
    publish(kafka, after[5:], pace=0.05)
    router.start()
    worker.start()
    expected |= {str(alert_id_for(uuid.UUID(e["event_id"]))) for e in after}

    def all_resent() -> Any:
        tracked = states(kafka)
        return tracked if all(k in tracked and tracked[k].resends == 1 for k in expected) else None

    try:
        tracked = wait_until(all_resent, 50, "every alert re-sent after its deadline, across the restart")
    except AssertionError:
        now = states(kafka)
        missing = {k for k in expected if k not in now or now[k].resends != 1}
        on_topic = {str(a.alert_id) for a in alerts(kafka)}
        raise AssertionError(f"not re-sent: {sorted(missing)}; states: "
                             f"{ {k: (now[k].status, now[k].resends) for k in missing if k in now} }; "
                             f"on alerts.police: {sorted(missing & on_topic)}") from None
    assert {s.status for k, s in tracked.items() if k in expected} == {"sent"}
    # Receivers' view: one alert per report and one page per step, whatever copies the crash left.
    wait_until(lambda: expected <= {str(a.alert_id) for a in alerts(kafka) if a.attempt == 1}, 10,
               "every report's alert on the police alert topic")
    pages: dict[tuple[str, int], set[uuid.UUID]] = {}
    for e in escalations(kafka):
        pages.setdefault((str(e.referral_id), e.step), set()).add(e.escalation_id)
    assert all(len(ids) == 1 for ids in pages.values())  # copies share one id: one page
    assert all((a, 1) in pages for a in expected)
    wait_until(lambda: expected <= {str(a.alert_id) for a in alerts(kafka) if a.attempt == 2}, 10,
               "every re-sent alert on the police alert topic, with its id")


def test_pager_shows_each_alert_resend_and_escalation_once(kafka: KafkaSettings, spawn: Callable[..., Any],
                                                           service_env: dict[str, str]) -> None:
    _start(kafka, spawn, str(SHORT))
    ignored = report()
    publish(kafka, [ignored])
    alert_id = str(alert_id_for(uuid.UUID(ignored["event_id"])))
    wait_until(lambda: [e for e in escalations(kafka) if str(e.referral_id) == alert_id and e.level == 1], 60,
               "the ignored alert re-sent and escalated to the joint office")

    def pages(agency: str) -> list[dict[str, Any]]:
        out = cli(service_env, "page", "--agency", agency, "--jurisdiction", "xian", "--no-follow", "--json",
                  "--idle-exit", "2")
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    centre = pages("police.command_center")
    attempts = sorted(p["attempt"] for p in centre if p.get("alert_id") == alert_id)
    assert attempts[:2] == [1, 2], "the alert, then its re-send, each paged once"
    office = pages(JOINT_OFFICE)
    assert [p["action"] for p in office if p.get("referral_id") == alert_id][:1] == ["escalate"]
    # A copy of the alert on the topic (as a crashed router leaves) and a second pager run: no page again.
    first = next(a for a in alerts(kafka) if str(a.alert_id) == alert_id and a.attempt == 1)
    publish_bytes(kafka, [first.model_dump_json().encode()], topic=POLICE_ALERTS.name)
    again = pages("police.command_center")
    assert not [p for p in again if p.get("alert_id") == alert_id and p.get("attempt") == 1]
