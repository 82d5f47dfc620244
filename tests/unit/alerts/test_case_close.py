"""A police resolution closes every open alert and referral of its case, in any arrival order.

The pure rule (`lifecycle.closes_with_case`) and the service's use of it (the handlers' closing,
the case index, closing on arrival), the latter over a store of plain dicts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest

from rules.deadlines import Deadlines
from schemas.alerts import CaseChange, ReferralResponse, dump
from schemas.events import Event, MissingChildReport
from schemas.referrals import Referral
from services.alerts import cases, lifecycle
from services.alerts.cli import case_rows
from services.alerts.handlers import Handlers
from services.router.alert import police_alert

from .conftest import T0, clue, missing_child, referral, resolution
from .fakes import Service, service

DAY = dt.timedelta(days=1)


@pytest.fixture
def running() -> Service:
    return service()


@pytest.fixture
def alerts(running: Service) -> Handlers:
    return running.handlers


def _report() -> MissingChildReport:
    report = missing_child()
    assert isinstance(report, MissingChildReport)
    return report


def _duties(report: MissingChildReport) -> dict[str, Referral]:
    """What the router sends for a report and an interception notice naming its case."""
    notice = clue("transport_hub_suspected_trafficking", case_id=report.event_id, at=T0 + dt.timedelta(hours=1))
    return {
        "lead": referral(report, "police.command_center"),
        "education": referral(report, "education", role="cooperating", urgency="unspecified", rule_id="y.edu"),
        "health": referral(report, "health", role="cooperating", urgency="unspecified", rule_id="y.health"),
        "railway": referral(notice, "railway", role="cooperating", urgency="prompt", rule_id="x.rail"),
        "transport": referral(notice, "transport", role="lead", urgency="prompt", rule_id="x.hub"),
    }


def _answer(alerts: Handlers, referral_id: uuid.UUID, answer: str, **kw: Any) -> None:
    asyncio.run(alerts.on_response(dump(ReferralResponse(referral_id=referral_id, answer=answer,
                                                         responded_at=T0 + dt.timedelta(hours=2), **kw))))


def _status(alerts: Handlers, key: uuid.UUID | str) -> str:
    state = alerts.state(str(key))
    assert state is not None
    status: str = state.status
    return status


def test_a_report_referral_without_case_id_belongs_to_the_case_the_report_opens() -> None:
    report = _report()
    assert report.case_id is None
    state = lifecycle.track_referral(referral(report, "police.command_center"))
    assert state.case_id == report.event_id == lifecycle.case_of(state)
    other = lifecycle.track_referral(referral(clue(), "railway", rule_id="x.rail"))
    assert other.case_id is None and lifecycle.case_of(other) is None


def test_which_states_a_resolution_closes() -> None:
    report = _report()
    case = cases.close_case(cases.open_case(report), resolution(report.event_id, at=T0 + DAY), T0 + DAY)
    assert isinstance(case, CaseChange) and case.resolved_at == T0 + DAY
    duties = {k: lifecycle.track_referral(r) for k, r in _duties(report).items()}
    assert all(lifecycle.closes_with_case(s, case) for s in duties.values())
    # Final states stay as they are; a duty raised after the resolution is about the found child.
    done = duties["education"].model_copy(update={"status": "done"})
    assert not lifecycle.closes_with_case(done, case)
    assert lifecycle.close(done, T0 + DAY, uuid.uuid4()).applied is False
    aftercare = lifecycle.track_referral(referral(
        clue("rescued_victim_needs_medical_care", case_id=report.event_id, at=T0 + 2 * DAY), "health",
        urgency="prompt", rule_id="x.med"))
    assert not lifecycle.closes_with_case(aftercare, case)
    # The report's own duties close whatever the clocks say.
    skewed = duties["lead"].model_copy(update={"raised_at": T0 + 3 * DAY})
    assert lifecycle.closes_with_case(skewed, case)
    # Another case's states never.
    assert not lifecycle.closes_with_case(lifecycle.track_referral(referral(_report(), "police.command_center")), case)


def test_resolution_closes_every_open_alert_and_referral_of_the_case(alerts: Handlers) -> None:
    report, other = _report(), _report()
    asyncio.run(alerts.on_event(dump(report)))
    asyncio.run(alerts.on_event(dump(other)))
    duties = _duties(report)
    alert = police_alert(report, [duties["lead"]], Deadlines.load())
    assert alert is not None
    asyncio.run(alerts.on_alert(dump(alert)))
    for r in (*duties.values(), referral(other, "police.command_center")):
        asyncio.run(alerts.on_referral(dump(r)))
    _answer(alerts, duties["railway"].referral_id, "accepted", agency="railway")
    _answer(alerts, duties["education"].referral_id, "done", agency="education", note="school informed")
    _answer(alerts, duties["health"].referral_id, "rejected", agency="health", reason="not ours")
    case_key = str(report.event_id)
    assert alerts.open_by_case[case_key] == {str(alert.alert_id), *(str(duties[k].referral_id)
                                                                   for k in ("lead", "railway", "transport"))}

    asyncio.run(alerts.on_event(dump(resolution(report.event_id, at=T0 + DAY))))

    case = alerts.case(report.event_id)
    assert case is not None and case.status == "closed"
    assert _status(alerts, alert.alert_id) == "closed"
    for k in ("lead", "railway", "transport"):
        assert _status(alerts, duties[k].referral_id) == "closed", k
    assert _status(alerts, duties["education"].referral_id) == "done"
    assert _status(alerts, duties["health"].referral_id) == "rejected"
    assert case_key not in alerts.open_by_case
    other_lead = referral(other, "police.command_center").referral_id
    assert _status(alerts, other_lead) == "sent" and str(other_lead) in alerts.open_by_case[str(other.event_id)]
    assert not [k for k in alerts.waiting if k == str(alert.alert_id)]
    # The readback a user queries (`referral-bus cases --all`) shows no open duty left.
    states = {str(s.id): s for s in alerts.store.states()}
    row = next(r for r in case_rows([case], states, T0 + DAY, include_closed=True))
    duties_listed = row["duties"]
    assert isinstance(duties_listed, list)
    assert row["status"] == "closed" and row["open"] == 0 and len(duties_listed) == 6


def test_what_arrives_after_the_resolution_is_stored_closed_unless_raised_after_it(alerts: Handlers) -> None:
    report = _report()
    asyncio.run(alerts.on_event(dump(report)))
    asyncio.run(alerts.on_event(dump(resolution(report.event_id, at=T0 + DAY))))
    duties = _duties(report)
    alert = police_alert(report, [duties["lead"]], Deadlines.load())
    assert alert is not None
    # A copy of the report naming the case, routed before the resolution, read after it.
    grouped: Event = missing_child(case_id=report.event_id, at=T0 + dt.timedelta(hours=2))
    grouped_alert = police_alert(grouped, [], Deadlines.load())
    assert grouped_alert is not None
    aftercare = referral(clue("rescued_victim_needs_medical_care", case_id=report.event_id, at=T0 + 2 * DAY),
                         "health", urgency="prompt", rule_id="x.med")
    # An answer parked before its referral arrived is still recorded.
    _answer(alerts, duties["railway"].referral_id, "acknowledged", agency="railway")
    for r in (*duties.values(), aftercare):
        asyncio.run(alerts.on_referral(dump(r)))
    asyncio.run(alerts.on_alert(dump(alert)))
    asyncio.run(alerts.on_alert(dump(grouped_alert)))

    for k, r in duties.items():
        assert _status(alerts, r.referral_id) == "closed", k
    railway = alerts.state(str(duties["railway"].referral_id))
    assert railway is not None and [h.what for h in railway.history][-2:] == ["acknowledged", "closed"]
    assert _status(alerts, alert.alert_id) == "closed"
    assert _status(alerts, grouped_alert.alert_id) == "closed"
    assert str(grouped_alert.alert_id) not in alerts.waiting  # never paged
    assert _status(alerts, aftercare.referral_id) == "sent"
    assert alerts.open_by_case[str(report.event_id)] == {str(aftercare.referral_id)}


def test_a_report_raised_after_the_resolution_but_read_before_it_is_paged_on_its_own(
        alerts: Handlers, running: Service) -> None:
    # The child went missing again the day after being found; the new report names the old case.
    # Its alert is read while the case still looks open (the resolution is on another topic, not
    # read yet), so it is grouped under the case; the resolution then un-groups it.
    report = _report()
    asyncio.run(alerts.on_event(dump(report)))
    first = police_alert(report, [], Deadlines.load())
    again: Event = missing_child(case_id=report.event_id, at=T0 + 2 * DAY)
    second = police_alert(again, [], Deadlines.load())
    assert first is not None and second is not None
    asyncio.run(alerts.on_alert(dump(first)))
    asyncio.run(alerts.on_alert(dump(second)))
    assert _status(alerts, second.alert_id) == "grouped" and str(second.alert_id) not in alerts.waiting

    asyncio.run(alerts.on_event(dump(resolution(report.event_id, at=T0 + DAY))))

    assert _status(alerts, first.alert_id) == "closed"
    assert _status(alerts, second.alert_id) == "sent"
    state = alerts.state(str(second.alert_id))
    assert state is not None and state.history[-1].what == "ungrouped"
    assert alerts.waiting[str(second.alert_id)] == second.ack_deadline
    assert asyncio.run(alerts.scan_deadlines(second.ack_deadline + dt.timedelta(seconds=1))) == 1
    assert running.sender.topics == ["alerts.police", "alerts.escalations"]  # re-sent, as the plan's ladder says


def test_a_further_report_raised_before_the_resolution_stays_grouped_and_closes(alerts: Handlers) -> None:
    report = _report()
    asyncio.run(alerts.on_event(dump(report)))
    first = police_alert(report, [], Deadlines.load())
    again: Event = missing_child(case_id=report.event_id, at=T0 + dt.timedelta(hours=2))
    second = police_alert(again, [], Deadlines.load())
    assert first is not None and second is not None
    for alert in (first, second):
        asyncio.run(alerts.on_alert(dump(alert)))
    asyncio.run(alerts.on_event(dump(resolution(report.event_id, at=T0 + DAY))))
    assert _status(alerts, second.alert_id) == "grouped" and str(second.alert_id) not in alerts.waiting


def test_a_clue_matched_to_the_case_is_released_not_closed_by_the_resolution(alerts: Handlers) -> None:
    # A railway clue fits the case's descriptors and is linked to it; the child is then found
    # elsewhere. The match may have been wrong (another child): the clue's referral stays open.
    report = _report()
    asyncio.run(alerts.on_event(dump(report)))
    matched = clue()
    asyncio.run(alerts.on_event(dump(matched)))
    case = alerts.case(report.event_id)
    assert case is not None and [c.event_id for c in case.clues] == [matched.event_id]
    check = referral(matched, "railway", rule_id="x.rail")
    asyncio.run(alerts.on_referral(dump(check)))
    state = alerts.state(str(check.referral_id))
    assert state is not None and state.grouped and state.case_id == report.event_id
    # A notice that names the case itself is of the case: it closes with it.
    notice = clue("transport_hub_suspected_trafficking", case_id=report.event_id)
    asyncio.run(alerts.on_event(dump(notice)))
    named = referral(notice, "transport", rule_id="x.hub")
    asyncio.run(alerts.on_referral(dump(named)))

    asyncio.run(alerts.on_event(dump(resolution(report.event_id, at=T0 + DAY))))

    assert _status(alerts, named.referral_id) == "closed"
    released = alerts.state(str(check.referral_id))
    assert released is not None and released.status == "sent" and not released.grouped
    assert released.case_id is None and released.history[-1].what == "released"
    assert str(check.referral_id) not in alerts.open_by_case.get(str(report.event_id), set())
    # Another referral of the same clue, read after the resolution: not grouped under the closed case.
    late = referral(matched, "police", rule_id="x.police")
    asyncio.run(alerts.on_referral(dump(late)))
    late_state = alerts.state(str(late.referral_id))
    assert late_state is not None and late_state.status == "sent" and not late_state.grouped


def test_the_case_index_is_rebuilt_from_the_table(alerts: Handlers, running: Service) -> None:
    report = _report()
    duties = _duties(report)
    for r in duties.values():
        asyncio.run(alerts.on_referral(dump(r)))
    # A state whose case changes (a clue grouped under another case) leaves nothing behind.
    elsewhere = uuid.uuid4()
    railway = alerts.state(str(duties.pop("railway").referral_id))
    assert railway is not None
    alerts.store_state(railway.model_copy(update={"case_id": elsewhere}))
    assert alerts.open_by_case[str(elsewhere)] == {str(railway.id)}
    built = {k: set(v) for k, v in alerts.open_by_case.items()}
    assert built[str(report.event_id)] == {str(r.referral_id) for r in duties.values()}
    alerts.open_by_case.clear()
    alerts.invalidate_index()
    assert alerts.ensure_index()
    assert alerts.open_by_case == built
    # Not ready (a rebalance): the resolution still finds the case's states, in the table.
    running.readiness.ready = False
    asyncio.run(alerts.on_event(dump(report)))
    asyncio.run(alerts.on_event(dump(resolution(report.event_id, at=T0 + DAY))))
    assert {_status(alerts, r.referral_id) for r in duties.values()} == {"closed"}
    assert _status(alerts, railway.id) == "sent"
