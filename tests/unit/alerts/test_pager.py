"""What the pager shows: only pages addressed to the agency (and jurisdiction), unreadable ones skipped;
further reports and clues grouped under their case, nothing about a case once it is closed."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord

from bus.dedup import SeenIds
from rules.catalog import JOINT_OFFICE
from rules.deadlines import Deadlines
from schemas.alerts import (
    CaseChange,
    Escalation,
    PoliceAlert,
    ReferralResponse,
    alert_id_for,
    escalation_id_for,
)
from schemas.events import Event, MissingChildReport
from services.alerts import cases, lifecycle
from services.alerts.pager import CaseNote, CaseNotes, Page, Pager, decide, pages_in
from services.router.alert import police_alert
from topics.catalog import CASES, ESCALATIONS, POLICE_ALERTS

from .conftest import clue, missing_child, referral, resolution

NOW = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
EVENT = uuid.uuid4()


def record(topic: str, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, 0, 0, 0, None, value, None, 0, len(value), ())


def alert(attempt: int = 1, jurisdiction: str = "xian") -> PoliceAlert:
    return PoliceAlert(alert_id=alert_id_for(EVENT), case_id=EVENT, event_id=EVENT, jurisdiction=jurisdiction,
                       agency="police.command_center", urgency="immediate", action="Deploy at once",
                       raised_at=NOW, ack_deadline=NOW + dt.timedelta(minutes=5), attempt=attempt)


def test_alerts_and_resends_are_distinct_pages_for_the_addressed_centre() -> None:
    first = list(pages_in(record(POLICE_ALERTS.name, alert(1).model_dump_json().encode()),
                          "police.command_center", "xian"))
    resent = list(pages_in(record(POLICE_ALERTS.name, alert(2).model_dump_json().encode()),
                           "police.command_center", None))
    assert [p.page_id for p in first] == [alert(1).delivery_id]
    assert [p.page_id for p in resent] == [alert(2).delivery_id] and "RE-SENT" in resent[0].text


def test_pages_for_other_agencies_or_jurisdictions_are_not_shown() -> None:
    value = alert(jurisdiction="yunyang").model_dump_json().encode()
    assert not list(pages_in(record(POLICE_ALERTS.name, value), "police.command_center", "xian"))
    assert not list(pages_in(record(POLICE_ALERTS.name, value), "anti_trafficking_office", None))


def test_an_escalation_pages_its_target() -> None:
    esc = Escalation(escalation_id=uuid.uuid4(), referral_id=alert_id_for(EVENT), case_id=EVENT, action="escalate",
                     step=2, level=1, target_agency="anti_trafficking_office", target_jurisdiction="xian",
                     reason="not acknowledged", decided_at=NOW, ack_deadline=None)
    (page,) = pages_in(record(ESCALATIONS.name, esc.model_dump_json().encode()), "anti_trafficking_office", "xian")
    assert page.page_id == str(esc.escalation_id) and "ESCALATE" in page.text


def test_an_unreadable_message_is_not_a_page() -> None:
    assert not list(pages_in(record(POLICE_ALERTS.name, b"{not json"), "police.command_center", None))


# -- grouping by case: the duty officer's view over several records -----------------------------

CENTRE = "police.command_center"


def _report_alert(report: Event, attempt: int = 1) -> PoliceAlert:
    raised = police_alert(report, [], Deadlines.load())
    assert raised is not None
    return raised.model_copy(update={"attempt": attempt})


def _case_of(report: Event) -> CaseChange:
    assert isinstance(report, MissingChildReport)
    return cases.open_case(report)


def _rec(model: PoliceAlert | Escalation | CaseChange) -> ConsumerRecord[bytes, bytes]:
    topic = {PoliceAlert: POLICE_ALERTS, Escalation: ESCALATIONS, CaseChange: CASES}[type(model)].name
    return record(topic, model.model_dump_json().encode())


def _pager(agency: str = CENTRE, tmp: Path | None = None) -> Pager:
    return Pager(agency, "xian", SeenIds(tmp / "seen.sqlite" if tmp else None),
                 CaseNotes(tmp / "cases.sqlite" if tmp else None))


def _escalation(alert: PoliceAlert, step: int, target: str = JOINT_OFFICE) -> Escalation:
    return Escalation(escalation_id=escalation_id_for(alert.alert_id, step), referral_id=alert.alert_id,
                      case_id=alert.case_id, action="resend" if target == CENTRE else "escalate", step=step,
                      level=0 if target == CENTRE else 1, target_agency=target, target_jurisdiction="xian",
                      reason="no acknowledgement", decided_at=NOW, ack_deadline=None)


def _texts(pager: Pager, *models: PoliceAlert | Escalation | CaseChange) -> list[str]:
    return [p.text for m in models for p in pager.handle(_rec(m))]


def test_a_further_report_of_an_open_case_is_one_grouped_line_not_a_new_alert() -> None:
    first = missing_child()
    again = missing_child(case_id=first.event_id)
    a1, a2 = _report_alert(first), _report_alert(again)
    assert a1.case_id == a2.case_id and a1.alert_id != a2.alert_id
    pager = _pager()
    (alert_page,) = pager.handle(_rec(a1))
    assert alert_page.text.startswith("[bold red]ALERT[/]") and alert_page.needs_ack
    (grouped,) = pager.handle(_rec(a2))
    assert "ALERT" not in grouped.text and not grouped.needs_ack
    assert f"GROUPED[/] under case {a1.case_id}" in grouped.text and str(again.event_id) in grouped.text
    assert json.loads(grouped.json)["page"] == "grouped"
    # A copy of either, or a re-send of the grouped report's alert: nothing more.
    assert _texts(pager, a2, a1, _report_alert(again, attempt=2)) == []
    assert pager.duplicates == 3


def test_the_case_that_opened_decides_which_alert_is_the_cases() -> None:
    first = missing_child()
    again = missing_child(case_id=first.event_id)
    pager = _pager()
    assert _texts(pager, _case_of(first)) == []  # bookkeeping only
    (grouped,) = pager.handle(_rec(_report_alert(again)))  # read before the case's own alert
    assert grouped.kind == "grouped"
    (alert_page,) = pager.handle(_rec(_report_alert(first)))
    assert alert_page.kind == "alert"


def test_a_clue_linked_to_an_owned_case_is_shown_once_with_the_reason() -> None:
    report = missing_child()
    reason = "same jurisdiction; 3.0 h after last seen; age 7 ~ 6; sex female; place 西安北站候车室"
    linked = cases.link_clue(_case_of(report), clue(), reason, NOW)
    assert linked is not None
    pager = _pager()
    (page,) = pager.handle(_rec(linked))
    assert page.text.startswith(f"[bold magenta]CLUE for case {linked.case_id}[/]: {reason}")
    assert not page.needs_ack
    body = json.loads(page.json)
    assert body["reason"] == reason and "descriptors" not in body and "person" not in body
    # Every later change of the case carries its clues: still one line per clue.
    again = cases.group_report(linked, missing_child(case_id=report.event_id))
    assert again is not None
    assert _texts(pager, linked, again) == []
    # Not the owner (the joint office), or another jurisdiction's pager: no clue line.
    assert _texts(_pager(JOINT_OFFICE), linked) == []
    assert [p for p in pages_in(_rec(linked), CENTRE, "yunyang") if p.kind == "clue"] == []


def test_once_closed_the_case_says_so_once_and_every_later_page_about_it_is_dropped(tmp_path: Path) -> None:
    report = missing_child()
    a1 = _report_alert(report)
    case = _case_of(report)
    closed = cases.close_case(case, resolution(case.case_id), NOW)
    assert isinstance(closed, CaseChange)
    centre, office = _pager(tmp=tmp_path / "centre"), _pager(JOINT_OFFICE, tmp_path / "office")
    assert len(_texts(centre, a1)) == 1
    assert len(_texts(office, _escalation(a1, 2))) == 1
    (bye,) = centre.handle(_rec(closed))
    assert "CASE CLOSED" in bye.text and str(case.case_id) in bye.text and not bye.needs_ack
    (office_bye,) = office.handle(_rec(closed))  # the office was paged about the case: it is told too
    assert office_bye.kind == "case_closed"
    # In flight when the child was found: a re-send, an escalation, a further report, a late clue.
    late_clue = cases.link_clue(case, clue(), "place", NOW)
    assert late_clue is not None
    in_flight = (_report_alert(report, attempt=2), _escalation(a1, 1, CENTRE),
                 _report_alert(missing_child(case_id=report.event_id)), closed)
    assert _texts(centre, *in_flight) == []
    assert _texts(office, _escalation(a1, 3), closed) == []
    # A restarted pager remembers.
    centre.close()
    office.close()
    centre, office = _pager(tmp=tmp_path / "centre"), _pager(JOINT_OFFICE, tmp_path / "office")
    assert _texts(centre, closed, _report_alert(report, attempt=3), late_clue) == []
    assert _texts(office, _escalation(a1, 4)) == []


def test_a_pager_never_paged_about_a_closed_case_is_not_told_but_drops_its_pages() -> None:
    report = missing_child()
    case = _case_of(report)
    closed = cases.close_case(case, resolution(case.case_id), NOW)
    assert isinstance(closed, CaseChange)
    office = _pager(JOINT_OFFICE)
    assert _texts(office, closed) == []
    assert _texts(office, _escalation(_report_alert(report), 2)) == []


@pytest.mark.parametrize(("note", "kind", "shown_kind"), [
    (None, "alert", "alert"),
    (CaseNote(alert_id="other"), "alert", "grouped"),
    (CaseNote(alert_id="other"), "resend", "grouped"),
    (CaseNote(closed=True), "alert", None),
    (CaseNote(closed=True), "escalation", None),
    (CaseNote(closed=True), "clue", None),
    (CaseNote(), "clue", "clue"),
])
def test_decide(note: CaseNote | None, kind: str, shown_kind: str | None) -> None:
    a = alert(attempt=1 if kind == "alert" else 2)
    candidate = Page("id", "text", "{}", kind=kind, case_id=str(a.case_id), alert_id=str(a.alert_id),  # type: ignore[arg-type]
                     alert=a)
    page, after = decide(candidate, note)
    assert (page.kind if page else None) == shown_kind
    assert after is not None and after.closed == (note is not None and note.closed)
    assert after.paged == (page is not None or (note is not None and note.paged))


# -- a new report after the resolution: the alerts service keeps its alert live, so does the pager --

RESOLVED = NOW + dt.timedelta(days=1)
CASE = uuid.uuid4()
LATER = uuid.uuid4()  # a report naming the case, after it was resolved
GROUPED = uuid.uuid4()  # a report that joined the case while it was open


def _alert_of(event_id: uuid.UUID, raised_at: dt.datetime, attempt: int = 1) -> PoliceAlert:
    return PoliceAlert(alert_id=alert_id_for(event_id), case_id=CASE, event_id=event_id, jurisdiction="xian",
                       agency=CENTRE, urgency="immediate", action="Deploy at once", raised_at=raised_at,
                       ack_deadline=raised_at + dt.timedelta(minutes=5), attempt=attempt)


def _candidate(kind: str, a: PoliceAlert, *, with_alert: bool = True) -> Page:
    return Page("id", "text", '{"alert_id": "x"}', kind=kind,  # type: ignore[arg-type]
                case_id=str(CASE), alert_id=str(a.alert_id), alert=a if with_alert else None,
                origin=(a.event_id, a.raised_at) if with_alert else None)


CLOSED = CaseNote(alert_id=str(alert_id_for(CASE)), closed=True, paged=True, resolved_at=RESOLVED,
                  reports=frozenset({CASE, GROUPED}))
AFTER = RESOLVED + dt.timedelta(seconds=1)


@pytest.mark.parametrize(("note", "kind", "event_id", "raised_at", "with_alert", "shown", "marked"), [
    # raised after the resolution, not of the case's reports: live, marked the first time
    (CLOSED, "alert", LATER, AFTER, True, True, True),
    (CLOSED, "resend", LATER, AFTER, True, True, True),  # its first attempt never reached this pager
    (CLOSED, "escalation", LATER, AFTER, True, True, True),  # the joint office's first page about it
    # already known live here: re-sends and escalations as usual, no marker
    (replace(CLOSED, live=frozenset({str(alert_id_for(LATER))})), "resend", LATER, AFTER, True, True, False),
    (replace(CLOSED, live=frozenset({str(alert_id_for(LATER))})), "escalation", LATER, AFTER, False, True, False),
    # raised at or before the resolution: dropped
    (CLOSED, "alert", LATER, RESOLVED, True, False, False),
    (CLOSED, "alert", LATER, NOW, True, False, False),
    # the case's own alert and a grouped report's, whenever raised: dropped
    (CLOSED, "resend", CASE, AFTER, True, False, False),
    (CLOSED, "alert", GROUPED, AFTER, True, False, False),
    # an escalation that carries neither its alert nor its origin, of an alert not known live: dropped
    (CLOSED, "escalation", LATER, AFTER, False, False, False),
    # no resolution time known (a store from before it was kept): dropped, as before
    (replace(CLOSED, resolved_at=None), "alert", LATER, AFTER, True, False, False),
    # clues about a closed case: dropped
    (CLOSED, "clue", LATER, AFTER, True, False, False),
])
def test_decide_after_the_resolution(note: CaseNote, kind: str, event_id: uuid.UUID, raised_at: dt.datetime,
                                     with_alert: bool, shown: bool, marked: bool) -> None:
    a = _alert_of(event_id, raised_at, attempt=1 if kind == "alert" else 2)
    candidate = _candidate(kind, a, with_alert=with_alert)
    page, after = decide(candidate, note)
    assert (page is not None) == shown
    assert after is not None and after.closed and after.resolved_at == note.resolved_at
    assert (str(a.alert_id) in after.live) == shown
    if page is not None:
        assert page.kind == kind and page.page_id == candidate.page_id and page.needs_ack
        marker = f"case {CASE} was resolved at {RESOLVED.isoformat(timespec='seconds')}: this was raised after it"
        assert (marker in page.text) == marked
        assert ("after_resolution" in json.loads(page.json)) == marked
    else:
        assert after == note


def test_decide_learns_the_resolution_time_and_the_reports_from_the_case_changes() -> None:
    report = missing_child()
    case = _case_of(report)
    joined = cases.group_report(case, missing_child(case_id=report.event_id))
    assert joined is not None
    closed = cases.close_case(joined, resolution(case.case_id), NOW)
    assert isinstance(closed, CaseChange) and closed.resolved_at is not None
    note = None
    for candidate in pages_in(_rec(closed), JOINT_OFFICE, "xian"):
        _, note = decide(candidate, note)
    assert note is not None and note.closed and note.resolved_at == closed.resolved_at
    assert note.reports == {case.event_id, *joined.grouped_reports}


def test_a_report_after_the_resolution_pages_as_a_marked_alert_and_a_restart_keeps_it_live(tmp_path: Path) -> None:
    report = missing_child()
    a1 = _report_alert(report)
    case = _case_of(report)
    joined_report = missing_child(case_id=report.event_id)
    joined = cases.group_report(case, joined_report)
    assert joined is not None
    closed = cases.close_case(joined, resolution(case.case_id), NOW)
    assert isinstance(closed, CaseChange) and closed.resolved_at is not None
    later = missing_child(case_id=report.event_id, at=closed.resolved_at + dt.timedelta(hours=2))
    a3 = _report_alert(later)
    assert a3.case_id == case.case_id and a3.raised_at > closed.resolved_at
    marker = (f"case {case.case_id} was resolved at {closed.resolved_at.isoformat(timespec='seconds')}: "
              "this was raised after it")
    centre, office = _pager(tmp=tmp_path / "centre"), _pager(JOINT_OFFICE, tmp_path / "office")
    assert len(_texts(centre, a1)) == 1
    assert [p.kind for p in centre.handle(_rec(closed))] == ["case_closed"]
    assert _texts(office, closed) == []  # never paged about the case: not told
    # The old alert's re-send and the grouped report's alert: nothing. The new report: a marked ALERT.
    assert _texts(centre, _report_alert(report, attempt=2), _report_alert(joined_report)) == []
    (page,) = centre.handle(_rec(a3))
    assert page.kind == "alert" and page.needs_ack and page.text.startswith("[bold red]ALERT[/]")
    assert marker in page.text and str(a3.alert_id) in page.text
    assert json.loads(page.json)["after_resolution"]["case_id"] == str(case.case_id)
    # Its escalation reaches the joint office, which dropped nothing about it yet: marked there too.
    (office_page,) = office.handle(_rec(_escalation(a3, 3).model_copy(update={"alert": a3})))
    assert office_page.kind == "escalation" and marker in office_page.text
    # A restart from the SQLite files: the new alert is still live (re-sends as usual, no marker),
    # nothing is shown twice, and everything else about the case stays dropped.
    centre.close()
    office.close()
    centre, office = _pager(tmp=tmp_path / "centre"), _pager(JOINT_OFFICE, tmp_path / "office")
    assert _texts(centre, closed, a3, _report_alert(report, attempt=3), a1) == []
    (resent,) = centre.handle(_rec(_report_alert(later, attempt=2)))
    assert resent.kind == "resend" and "RE-SENT ALERT (attempt 2)" in resent.text and marker not in resent.text
    # An escalation that does not carry the alert: the pager remembers the alert is live.
    (esc,) = office.handle(_rec(_escalation(a3, 4)))
    assert esc.kind == "escalation" and marker not in esc.text
    assert _texts(office, _escalation(a1, 4), _escalation(a3, 3).model_copy(update={"alert": a3})) == []
    centre.close()
    office.close()


def test_a_store_written_before_the_resolution_was_kept_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE cases (case_id TEXT PRIMARY KEY, alert_id TEXT, closed INTEGER NOT NULL DEFAULT 0, "
               "paged INTEGER NOT NULL DEFAULT 0)")
    db.execute("INSERT INTO cases VALUES ('c', 'a', 1, 1)")
    db.commit()
    db.close()
    notes = CaseNotes(path)
    assert notes.get("c") == CaseNote("a", closed=True, paged=True)
    live = CaseNote("a", True, True, RESOLVED, frozenset({CASE}), frozenset({"x"}))
    notes.put("c", live)
    notes.close()
    again = CaseNotes(path)
    assert again.get("c") == live
    again.close()


def test_a_rejected_duty_raised_after_the_resolution_is_re_assigned_and_paged_to_the_joint_office(
        tmp_path: Path) -> None:
    # The found child's aftercare, raised after the resolution: its lead rejects it, and the
    # re-assignment to the joint office is a page, although the case is closed.
    report = missing_child()
    closed = cases.close_case(_case_of(report), resolution(report.event_id), NOW)
    assert isinstance(closed, CaseChange) and closed.resolved_at is not None
    aftercare = clue("rescued_victim_needs_medical_care", case_id=report.event_id,
                     at=closed.resolved_at + dt.timedelta(hours=3))
    state = lifecycle.track_referral(referral(aftercare, "health", urgency="prompt", rule_id="x.med"))
    rejected = ReferralResponse(referral_id=state.id, answer="rejected", reason="no paediatric ward",
                                responded_at=closed.resolved_at + dt.timedelta(hours=4), agency="health")
    esc = lifecycle.reassignment(state, rejected).escalation
    assert esc.alert is None and esc.event_id == aftercare.event_id
    office = _pager(JOINT_OFFICE, tmp_path)
    # A re-assignment of a duty the resolution ended, read after it: dropped.
    before = lifecycle.reassignment(state.model_copy(update={"raised_at": closed.resolved_at - dt.timedelta(hours=1),
                                                             "id": uuid.uuid4()}), rejected).escalation
    assert _texts(office, closed, before) == []
    (page,) = office.handle(_rec(esc))
    assert page.kind == "escalation" and "REASSIGN" in page.text and "this was raised after it" in page.text
