"""The board's view of the bus: who sees what, need-to-know, entitlement, times, references."""

from __future__ import annotations

import datetime as dt
import uuid

from bus.presentation import local_time
from schemas.alerts import ReferralResponse, TrackedState
from schemas.references import matches, short_ref
from services.console.board import (
    BusState,
    PendingAnswer,
    answers_allowed,
    restrict,
    snapshot,
    view,
    visible,
)

from .console_fakes import T0, Desk, alert_pair, answered, case_of, escalated

CC = Desk("police.command_center")
ATO = Desk("anti_trafficking_office")
EDU = Desk("education")
NOW = T0 + dt.timedelta(minutes=1)


def bus_with(*states: TrackedState) -> BusState:
    bus = BusState()
    for s in states:
        bus.put_state(s)
    return bus


def test_an_alert_is_one_card_for_the_command_centre_and_nothing_for_others() -> None:
    alert, lead = alert_pair()
    bus = bus_with(alert, lead)
    items = snapshot(bus, CC, {}, NOW, 24)
    assert [(v["id"], bool(v["card"]), bool(v["row"])) for v in items] == [(str(alert.id), True, True)]
    assert snapshot(bus, EDU, {}, NOW, 24) == []
    assert snapshot(bus, ATO, {}, NOW, 24) == []


def test_an_escalation_shows_the_card_to_the_agency_it_reached() -> None:
    alert, lead = alert_pair()
    up = escalated(alert)
    bus = bus_with(up, lead)
    assert visible(up, ATO) and visible(up, CC) and not visible(up, EDU)
    [item] = snapshot(bus, ATO, {}, NOW, 24)
    assert item["card"]["level"] == 1 and item["card"]["allowed"] == answers_allowed("sent")


def test_need_to_know_narrows_the_twins_subject_to_the_viewers_projection() -> None:
    alert, lead = alert_pair()
    subject = {"person": {"age": 6, "name": "张小花"}, "description": "d", "last_seen_location": {"lat": 1}}
    assert restrict(subject, ["person.age", "last_seen_location"]) == {"person": {"age": 6},
                                                                       "last_seen_location": {"lat": 1}}
    card = view(alert, bus_with(alert, lead), CC, {}, NOW, 24)["card"]
    assert card["child"]["name"] == "张小花" and card["child"]["lat"] == 34.37
    # An agency with a narrow projection reached by an escalation sees only its own fields.
    up = escalated(alert, to="publicity")
    narrow = view(up, bus_with(up, lead), Desk("publicity"), {}, NOW, 24)["card"]
    assert narrow["child"]["age"] == 6 and narrow["child"]["name"] is None
    assert narrow["child"]["description"] is None and narrow["child"]["address"] is None


def test_times_are_in_the_jurisdictions_zone_without_microseconds() -> None:
    t = dt.datetime(2026, 11, 20, 0, 0, 5, 123456, tzinfo=dt.UTC)
    assert local_time(t, "xian") == {"text": "2026-11-20 08:00:05", "ms": int(t.timestamp() * 1000),
                                     "zone": "Asia/Shanghai"}


def test_short_references_are_stable_and_typed_back() -> None:
    some = uuid.UUID("12345678-1234-5678-1234-567812345678")
    ref = short_ref("xian", some)
    assert ref == short_ref("xian", some) and ref.startswith("XIAN-") and len(ref) == len("XIAN-AAAA-AAAA")
    head, a, b = ref.split("-")
    assert matches(ref.lower(), "xian", some) and matches(f"{head}-{a}{b}", "xian", some)
    assert not matches(ref, "xian", uuid.uuid4())


def test_answers_show_once_with_the_officer_and_pending_ones_until_recorded() -> None:
    alert, lead = alert_pair()
    response = ReferralResponse(referral_id=alert.id, answer="acknowledged", agency="police.command_center",
                                officer="王明 (cc-wang)", responded_at=NOW)
    pending = {str(alert.id): [PendingAnswer(str(response.response_id), str(alert.id), "acknowledged", "queued")]}
    before = view(alert, bus_with(alert, lead), CC, pending, NOW, 24)["card"]
    assert [p["status"] for p in before["pending"]] == ["queued"]
    after_alert = answered(alert, response, "acknowledged")
    after_lead = answered(lead, response, "acknowledged")
    card = view(after_alert, bus_with(after_alert, after_lead), CC, pending, NOW, 24)["card"]
    assert card["pending"] == []
    assert [(a["what"], a["officer"]) for a in card["answers"]] == [("acknowledged", "王明 (cc-wang)")]
    assert card["allowed"] == ["accepted", "rejected", "done"] and card["countdown"] is None


def test_countdown_follows_the_current_step_and_overdue_rows_are_flagged() -> None:
    alert, lead = alert_pair()
    card = view(alert, bus_with(alert, lead), CC, {}, NOW, 24)["card"]
    assert card["countdown"]["text"] == "2026-11-20 08:05:00"
    late = T0 + dt.timedelta(minutes=6)
    assert view(alert, bus_with(alert, lead), CC, {}, late, 24)["row"]["overdue"] is True


def test_a_case_card_lists_its_clues_and_every_duty() -> None:
    alert, lead = alert_pair()
    bus = bus_with(alert, lead)
    case = case_of(alert)
    bus.cases[str(case.case_id)] = case
    other = lead.model_copy(update={"id": uuid.uuid4(), "agency": "publicity", "role": "cooperating",
                                    "twin_id": None, "target_agency": "publicity"})
    bus.put_state(other)
    card = view(alert, bus, CC, {}, NOW, 24)["card"]
    assert [(d["agency"], d["role"]) for d in card["duties"]] == [("publicity", "cooperating")]
    assert bus.affected("state", str(other.id)) == {str(alert.id), str(lead.id), str(other.id)}


def test_drills_are_marked() -> None:
    alert, lead = alert_pair(exercise=True)
    item = view(alert, bus_with(alert, lead), CC, {}, NOW, 24)
    assert item["card"]["exercise"] is True and item["row"]["exercise"] is True


def test_a_desk_scoped_to_a_jurisdiction_sees_only_it() -> None:
    alert, _ = alert_pair()
    assert visible(alert, Desk("police.command_center", frozenset({"xian"})))
    assert not visible(alert, Desk("police.command_center", frozenset({"yunyang"})))
