"""What the pager shows: only pages addressed to the agency (and jurisdiction), unreadable ones skipped;
further reports and clues grouped under their case, nothing about a case once it is closed."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord

from referral_bus.dedup import SeenIds
from referral_bus.rules.catalog import JOINT_OFFICE
from referral_bus.rules.deadlines import Deadlines
from referral_bus.schemas.alerts import CaseChange, Escalation, PoliceAlert, alert_id_for, escalation_id_for
from referral_bus.schemas.events import Event, MissingChildReport
from referral_bus.services.alerts import cases
from referral_bus.services.alerts.emitter import police_alert
from referral_bus.services.alerts.pager import CaseNote, CaseNotes, Page, Pager, decide, pages_in
from referral_bus.topics.catalog import CASES, ESCALATIONS, POLICE_ALERTS

from .conftest import clue, missing_child, resolution

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
