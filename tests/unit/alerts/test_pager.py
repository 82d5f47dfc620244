"""What the pager shows: only pages addressed to the desk's agency (and jurisdiction), unreadable
ones skipped; further reports and clues grouped under their case, nothing about a case once it is
closed but for the duties the alerts service kept open after the resolution; the child's details
the desk may know. Every decision comes from the states the alerts service publishes."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord

from bus.dedup import SeenIds
from bus.desk import CaseMemory, Child, Desk, Notice, NoticeKind, decide, notices_of_state
from rules.catalog import COMMAND_CENTER, JOINT_OFFICE
from rules.deadlines import Deadlines
from schemas.alerts import CaseChange, PoliceAlert, ReferralResponse, TrackedState
from schemas.events import Event, MissingChildReport
from services.alerts import cases, lifecycle
from services.alerts.pager import render
from services.alerts.pager.feed import decision
from services.alerts.pager.loop import Pager
from services.alerts.pager.memory import DeskMemory, DeskTaken, claim_desk
from services.router.alert import police_alert
from topics.catalog import ALERT_STATES, CASES

from .conftest import T0, clue, missing_child, referral, resolution

CENTRE = COMMAND_CENTER
DEADLINES = Deadlines.load()


def record(topic: str, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, 0, 0, 0, None, value, None, 0, len(value), ())


def _alert(report: Event) -> PoliceAlert:
    raised = police_alert(report, [], DEADLINES)
    assert raised is not None
    return raised


def _tracked(report: Event, *, under: PoliceAlert | None = None) -> TrackedState:
    """The state the alerts service publishes for a report's alert (grouped `under` a case's alert)."""
    return lifecycle.track_alert(_alert(report), under=under.alert_id if under else None)


def _step(state: TrackedState, steps: int = 1) -> TrackedState:
    """The state after `steps` more rungs of the ladder (re-send, then escalations), as published."""
    for _ in range(steps):
        assert state.next_deadline is not None
        escalation = lifecycle.next_escalation(state, state.next_deadline, DEADLINES, resends=1)
        assert escalation is not None
        state = lifecycle.apply_escalation(state, escalation).state
    return state


def _case_of(report: Event) -> CaseChange:
    assert isinstance(report, MissingChildReport)
    return cases.open_case(report)


def _closed(case: CaseChange, at: dt.datetime = T0 + dt.timedelta(days=1)) -> CaseChange:
    closed = cases.close_case(case, resolution(case.case_id, at=at), at)
    assert isinstance(closed, CaseChange) and closed.resolved_at is not None
    return closed


def _pager(agency: str = CENTRE, tmp: Path | None = None, jurisdiction: str | None = "xian") -> Pager:
    return Pager(Desk(agency, jurisdiction), SeenIds(tmp / "seen.sqlite" if tmp else None),
                 DeskMemory(tmp / "cases.sqlite" if tmp else None))


def _texts(pager: Pager, *items: TrackedState | CaseChange) -> list[str]:
    return [render.text(n) for item in items for n in pager.handle(item)]


def test_alerts_and_resends_are_distinct_pages_for_the_addressed_centre() -> None:
    state = _tracked(missing_child())
    (first,) = notices_of_state(state, Desk(CENTRE, "xian"))
    (resent,) = notices_of_state(_step(state), Desk(CENTRE))
    assert first.notice_id == f"{state.id}#1" and first.kind == "alert" and first.needs_answer
    assert resent.notice_id == f"{state.id}#2" and "RE-SENT ALERT (attempt 2)" in render.text(resent)


def test_pages_for_other_agencies_or_jurisdictions_are_not_shown() -> None:
    state = _tracked(missing_child(jurisdiction="yunyang"))
    assert not notices_of_state(state, Desk(CENTRE, "xian"))
    assert not notices_of_state(state, Desk(JOINT_OFFICE))
    # Once escalated to the joint office, the centre is not paged about the alert any more.
    escalated = _step(state, 2)
    assert not notices_of_state(escalated, Desk(CENTRE))


def test_an_escalation_pages_its_target() -> None:
    state = _step(_tracked(missing_child()), 2)
    (page,) = notices_of_state(state, Desk(JOINT_OFFICE, "xian"))
    assert state.escalation is not None and page.notice_id == str(state.escalation.escalation_id)
    assert page.kind == "escalation" and "ESCALATE" in render.text(page)
    assert json.loads(render.as_json(page, JOINT_OFFICE))["action"] == "escalate"


def test_a_rejected_alert_without_a_lead_referral_is_re_assigned_and_paged_to_the_joint_office() -> None:
    state = _tracked(missing_child())
    assert state.twin_id is None
    rejected = lifecycle.apply_response(state, ReferralResponse(referral_id=state.id, answer="rejected",
                                                                reason="not ours", responded_at=T0), T0).state
    (page,) = notices_of_state(rejected, Desk(JOINT_OFFICE, "xian"))
    assert page.kind == "reassign" and "REASSIGN" in render.text(page) and page.child is not None
    assert not notices_of_state(rejected, Desk(CENTRE))


def test_an_unreadable_message_is_not_a_page() -> None:
    assert decision(record(ALERT_STATES.name, b"{not json")) is None
    assert decision(record(CASES.name, b'{"case_id": 1}')) is None


def test_answered_alerts_page_nothing_more() -> None:
    state = _tracked(missing_child())
    answered = lifecycle.apply_response(state, ReferralResponse(referral_id=state.id, answer="acknowledged",
                                                                responded_at=T0), T0).state
    assert not notices_of_state(answered, Desk(CENTRE))


# -- the child's details: what the desk may know ------------------------------------------------

def test_an_alert_shows_the_childs_details_the_desk_is_entitled_to() -> None:
    report = missing_child(age=6, sex="female", place="西安北站").model_copy(
        update={"description": "red coat, a small scar on the left hand"})
    state = _tracked(report)
    (page,) = notices_of_state(state, Desk(CENTRE))
    assert page.child == Child(age=6, sex="female", description="red coat, a small scar on the left hand",
                               last_seen_at=(T0 - dt.timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
                               last_seen_place="西安北站")
    first, second = render.text(page).splitlines()
    assert first.startswith("[bold red]ALERT[/]") and first.endswith(f"alert {state.id} case {state.case_id}")
    assert second.strip().startswith("child: age 6 · female · last seen 西安北站 at ")
    assert "red coat" in second
    assert json.loads(render.as_json(page, CENTRE))["subject"]["description"].startswith("red coat")


def test_a_desk_is_shown_only_the_details_its_agency_may_know() -> None:
    subject = {"person": {"age": 6, "sex": "female", "name": "王小红"}, "description": "red coat",
               "last_seen_location": {"place": "西安北站", "address": "1 Station Rd"}}
    assert Child.of(subject, CENTRE) == Child(age=6, sex="female", description="red coat", last_seen_place="西安北站")
    # Publicity's projection has the age, the sex and a place, never the description.
    assert Child.of(subject, "publicity") == Child(age=6, sex="female")


# -- grouping by case: the duty officer's view over several decisions ----------------------------

def test_a_further_report_of_an_open_case_is_one_grouped_line_not_a_new_alert() -> None:
    first = missing_child()
    again = missing_child(case_id=first.event_id)
    own, grouped = _tracked(first), _tracked(again, under=_alert(first))
    assert own.case_id == grouped.case_id and grouped.status == "grouped"
    pager = _pager()
    (alert_page,) = pager.handle(own)
    assert render.text(alert_page).startswith("[bold red]ALERT[/]") and alert_page.needs_answer
    (line,) = pager.handle(grouped)
    text = render.text(line)
    assert "ALERT" not in text and not line.needs_answer
    assert f"GROUPED[/] under case {own.case_id}" in text and str(again.event_id) in text
    assert f"the case's alert {own.id} stands" in text
    assert json.loads(render.as_json(line, CENTRE))["page"] == "grouped"
    # A copy of either, or a later change of the grouped state: nothing more.
    later = grouped.model_copy(update={"history": (*grouped.history, grouped.history[0])})
    assert _texts(pager, grouped, own, later) == []
    assert pager.duplicates == 3


def test_a_grouped_report_read_before_the_cases_own_alert_is_still_a_grouped_line() -> None:
    first = missing_child()
    again = missing_child(case_id=first.event_id)
    pager = _pager()
    assert _texts(pager, _case_of(first)) == []  # an open case without clues: nothing to say
    (grouped,) = pager.handle(_tracked(again, under=_alert(first)))
    assert grouped.kind == "grouped"
    (alert_page,) = pager.handle(_tracked(first))
    assert alert_page.kind == "alert"


def test_a_clue_linked_to_an_owned_case_is_shown_once_with_the_reason() -> None:
    report = missing_child()
    reason = "same jurisdiction; 3.0 h after last seen; age 7 ~ 6; sex female; place 西安北站候车室"
    linked = cases.link_clue(_case_of(report), clue(), reason, T0)
    assert linked is not None
    pager = _pager()
    (page,) = pager.handle(linked)
    assert render.text(page).startswith(f"[bold magenta]CLUE for case {linked.case_id}[/]: {reason}")
    assert not page.needs_answer
    body = json.loads(render.as_json(page, CENTRE))
    assert body["reason"] == reason and "descriptors" not in body and "person" not in body
    # Every later change of the case carries its clues: still one line per clue.
    again = cases.group_report(linked, missing_child(case_id=report.event_id))
    assert again is not None
    assert _texts(pager, linked, again) == []
    # Not the owner (the joint office), or another jurisdiction's desk: no clue line.
    assert _texts(_pager(JOINT_OFFICE), linked) == []
    assert _texts(_pager(jurisdiction="yunyang"), linked) == []


def test_once_closed_the_case_says_so_once_and_every_later_page_about_it_is_dropped(tmp_path: Path) -> None:
    report = missing_child()
    case = _case_of(report)
    closed = _closed(case)
    own = _tracked(report)
    centre, office = _pager(tmp=tmp_path / "centre"), _pager(JOINT_OFFICE, tmp_path / "office")
    assert len(_texts(centre, own)) == 1
    assert len(_texts(office, _step(own, 2))) == 1
    (bye,) = centre.handle(closed)
    text = render.text(bye)
    assert "CASE CLOSED" in text and str(case.case_id) in text and not bye.needs_answer
    (office_bye,) = office.handle(closed)  # the office was paged about the case: it is told too
    assert office_bye.kind == "case_closed"
    # Decided before the child was found, read after: a re-send, an escalation, a further report, a late clue.
    late_clue = cases.link_clue(case, clue(), "place", T0)
    assert late_clue is not None
    in_flight = (_step(own), _tracked(missing_child(case_id=report.event_id)), closed)
    assert _texts(centre, *in_flight) == []
    assert _texts(office, _step(own, 3), closed) == []
    # A restarted pager remembers.
    centre.close()
    office.close()
    centre, office = _pager(tmp=tmp_path / "centre"), _pager(JOINT_OFFICE, tmp_path / "office")
    assert _texts(centre, closed, _step(own), late_clue) == []
    assert _texts(office, _step(own, 4)) == []


def test_a_pager_never_paged_about_a_closed_case_is_not_told_but_drops_its_pages() -> None:
    report = missing_child()
    closed = _closed(_case_of(report))
    office = _pager(JOINT_OFFICE)
    assert _texts(office, closed) == []
    assert _texts(office, _step(_tracked(report), 2)) == []


RESOLVED = T0 + dt.timedelta(days=1)


def _notice(kind: NoticeKind, *, kept_open: bool = False, state_id: uuid.UUID | None = None) -> Notice:
    state = _tracked(missing_child()).model_copy(update={"id": state_id or uuid.uuid4()})
    return Notice("id", kind, state.case_id, needs_answer=kind in ("alert", "resend", "escalation", "reassign"),
                  state=state, after_resolution=RESOLVED if kept_open else None)


LIVE = uuid.uuid4()


@pytest.mark.parametrize(("memory", "kind", "kept_open", "shown", "marked"), [
    (None, "alert", False, True, False),
    (CaseMemory(paged=True), "resend", False, True, False),
    (CaseMemory(), "clue", False, True, False),
    (CaseMemory(), "grouped", False, True, False),
    # the case is closed here: anything not kept open is dropped
    (CaseMemory(closed=True), "alert", False, False, False),
    (CaseMemory(closed=True), "escalation", False, False, False),
    (CaseMemory(closed=True), "clue", False, False, False),
    (CaseMemory(closed=True), "grouped", False, False, False),
    # a duty the service kept open after the resolution: paged, marked the first time only
    (CaseMemory(closed=True), "alert", True, True, True),
    (CaseMemory(closed=True), "escalation", True, True, True),
    (CaseMemory(closed=True), "reassign", True, True, True),
    (None, "alert", True, True, True),  # the closure not read yet: the state says it all
    (CaseMemory(closed=True, live=frozenset({str(LIVE)})), "resend", True, True, False),
])
def test_decide(memory: CaseMemory | None, kind: NoticeKind, kept_open: bool, shown: bool, marked: bool) -> None:
    candidate = _notice(kind, kept_open=kept_open, state_id=LIVE)
    page, after = decide(candidate, memory)
    assert (page is not None) == shown
    assert page is None or page.marked == marked
    assert after is not None and after.closed == (memory is not None and memory.closed)
    assert after.paged == (page is not None or (memory is not None and memory.paged))
    assert (str(LIVE) in after.live) == (kept_open or str(LIVE) in (memory.live if memory else ()))


def test_a_closure_is_told_to_the_owner_and_where_the_case_was_paged() -> None:
    closed = _closed(_case_of(missing_child()))
    (owner,) = _pager().handle(closed)
    assert owner.kind == "case_closed"
    elsewhere = Notice("case|x|closed", "case_closed", closed.case_id, needs_answer=False, case=closed, owner=False)
    assert decide(elsewhere, CaseMemory())[0] is None
    assert decide(elsewhere, CaseMemory(paged=True))[0] is not None
    assert decide(elsewhere, CaseMemory(paged=True, closed=True))[0] is None


# -- a new report after the resolution: the alerts service keeps its alert open, the desk pages it --

def test_a_report_after_the_resolution_pages_as_a_marked_alert_and_a_restart_keeps_it_live(tmp_path: Path) -> None:
    report = missing_child()
    case = _case_of(report)
    joined = missing_child(case_id=report.event_id)
    grouped_case = cases.group_report(case, joined)
    assert grouped_case is not None
    closed = _closed(grouped_case)
    assert closed.resolved_at is not None
    later = missing_child(case_id=report.event_id, at=closed.resolved_at + dt.timedelta(hours=2))
    # What the service publishes: the old alert closed, the grouped one closed, the new one kept open.
    own = _tracked(report)
    kept = lifecycle.outlive(_tracked(later), closed, closed.resolved_at + dt.timedelta(hours=2))
    assert kept is not None and kept.after_resolution == closed.resolved_at and kept.status == "sent"
    marker = (f"case {case.case_id} was resolved at {closed.resolved_at.isoformat(timespec='seconds')}: "
              "this was raised after it")
    centre, office = _pager(tmp=tmp_path / "centre"), _pager(JOINT_OFFICE, tmp_path / "office")
    assert len(_texts(centre, own)) == 1
    assert [p.kind for p in centre.handle(closed)] == ["case_closed"]
    assert _texts(office, closed) == []  # never paged about the case: not told
    # The old alert's re-send and the grouped report's alert, read late: nothing. The new report: a marked ALERT.
    assert _texts(centre, _step(own), _tracked(joined, under=_alert(report))) == []
    (page,) = centre.handle(kept)
    text = render.text(page).splitlines()[0]
    assert page.kind == "alert" and page.needs_answer and text.startswith("[bold red]ALERT[/]")
    assert marker in text and str(kept.id) in text
    assert json.loads(render.as_json(page, CENTRE))["after_resolution"]["case_id"] == str(case.case_id)
    # Its escalation reaches the joint office, which dropped nothing about it yet: marked there too.
    (office_page,) = office.handle(_step(kept, 2))
    assert office_page.kind == "escalation" and marker in render.text(office_page)
    # A restart from the SQLite files: the new alert is still live (re-sends as usual, no marker),
    # nothing is shown twice, and everything else about the case stays dropped.
    centre.close()
    office.close()
    centre, office = _pager(tmp=tmp_path / "centre"), _pager(JOINT_OFFICE, tmp_path / "office")
    assert _texts(centre, closed, kept, _step(own, 1), own) == []
    (resent,) = centre.handle(_step(kept))
    assert resent.kind == "resend" and "RE-SENT ALERT (attempt 2)" in render.text(resent)
    assert marker not in render.text(resent)
    assert _texts(office, closed, _step(own, 2), _step(kept, 2)) == []
    # The next rung, the parent jurisdiction's command centre: its first page about it, marked.
    parent = _pager(jurisdiction=None)
    (esc,) = parent.handle(_step(kept, 3))
    assert esc.kind == "escalation" and esc.escalation is not None and esc.escalation.target_jurisdiction != "xian"
    assert marker in render.text(esc)
    parent.close()
    centre.close()
    office.close()


def test_a_store_written_by_an_earlier_pager_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE cases (case_id TEXT PRIMARY KEY, alert_id TEXT, closed INTEGER NOT NULL DEFAULT 0, "
               "paged INTEGER NOT NULL DEFAULT 0)")
    db.execute("INSERT INTO cases VALUES ('c', 'a', 1, 1)")
    db.commit()
    db.close()
    memory = DeskMemory(path)
    assert memory.case("c") == CaseMemory(closed=True, paged=True)
    live = CaseMemory(True, True, frozenset({"x"}))
    memory.put_case("c", live)
    memory.advance(CASES.name, 2, 17)
    memory.close()
    again = DeskMemory(path)
    assert again.case("c") == live and again.positions(CASES.name) == {2: 17}
    again.close()


def test_a_rejected_duty_raised_after_the_resolution_is_re_assigned_and_paged_to_the_joint_office(
        tmp_path: Path) -> None:
    # The found child's aftercare, raised after the resolution and kept open by the service: its
    # lead rejects it, and the re-assignment to the joint office is a page, although the case is closed.
    report = missing_child()
    closed = _closed(_case_of(report))
    assert closed.resolved_at is not None
    aftercare = clue("rescued_victim_needs_medical_care", case_id=report.event_id,
                     at=closed.resolved_at + dt.timedelta(hours=3))
    state = lifecycle.outlive(lifecycle.track_referral(referral(aftercare, "health", urgency="prompt",
                                                                rule_id="x.med")), closed, closed.resolved_at)
    assert state is not None
    rejected = lifecycle.apply_response(state, ReferralResponse(
        referral_id=state.id, answer="rejected", reason="no paediatric ward",
        responded_at=closed.resolved_at + dt.timedelta(hours=4), agency="health"),
        closed.resolved_at + dt.timedelta(hours=4)).state
    assert rejected.escalation is not None and rejected.escalation.action == "reassign"
    office = _pager(JOINT_OFFICE, tmp_path)
    # A duty the resolution ended was closed by the service: nothing to re-assign, nothing paged.
    ended = lifecycle.close(lifecycle.track_referral(referral(clue(case_id=report.event_id), "health",
                                                              rule_id="x.h")), T0, uuid.uuid4()).state
    assert _texts(office, closed, ended) == []
    (page,) = office.handle(rejected)
    text = render.text(page)
    assert page.kind == "reassign" and "REASSIGN" in text and "this was raised after it" in text


# -- desks: each its own memory, never shared --------------------------------------------------------

def test_each_running_pager_of_an_agency_gets_a_desk_of_its_own(tmp_path: Path) -> None:
    first = claim_desk(tmp_path, CENTRE)
    second = claim_desk(tmp_path, CENTRE)
    assert (first.name, second.name) == ("1", "2") and first.seen != second.seen
    assert first.seen == tmp_path / "dedup" / f"pager.{CENTRE}.sqlite"  # the files pagers always used
    with pytest.raises(DeskTaken, match="desk 2"):
        claim_desk(tmp_path, CENTRE, "2")
    first.release()
    again = claim_desk(tmp_path, CENTRE)  # a restarted pager takes desk 1 back, and what it knew
    assert again.name == "1" and again.cases == first.cases
    assert claim_desk(tmp_path, JOINT_OFFICE).name == "1"
    for files in (second, again):
        files.release()
