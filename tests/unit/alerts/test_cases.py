"""Missing-child cases: clue matching, grouping, and closing only on a police resolution."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from schemas.alerts import CaseChange, ReferralResponse
from schemas.events import MissingChildReport
from services.alerts import cases, lifecycle
from services.alerts.settings import CASES_FILE

from .conftest import T0, clue, missing_child, referral, resolution

POLICY = cases.CasePolicy.load(CASES_FILE)


def _case(**kw: Any) -> CaseChange:
    report = missing_child(**kw)
    assert isinstance(report, MissingChildReport)
    return cases.open_case(report)


def test_report_opens_a_case_owned_by_the_command_centre() -> None:
    case = _case()
    assert case.status == "open" and case.owner == "police.command_center" and case.change == "opened"
    assert case.case_id == case.event_id


@pytest.mark.parametrize(("event_kw", "fits"), [
    ({}, True),                                                   # same place, age, sex, 3 h later
    ({"jurisdiction": "shaanxi"}, True),                          # parent jurisdiction neighbours
    ({"jurisdiction": "yunyang"}, True),                          # listed neighbour in cases.yaml
    ({"jurisdiction": "honghe"}, False),                          # far away
    ({"age": 12}, False),                                         # age contradicts
    ({"sex": "male"}, False),                                     # sex contradicts
    ({"age": None, "sex": None, "place": None}, False),           # nothing fits
    ({"age": None, "sex": None}, True),                           # place alone fits
    ({"at": T0 + dt.timedelta(days=40)}, False),                  # outside the window
    ({"at": T0 - dt.timedelta(days=1)}, False),                   # before the child went missing
    ({"kind": "fake_paternity_test_found"}, False),               # not a clue kind
    ({"exercise": True}, False),                                  # a drill never joins a real case
])
def test_clue_matching(event_kw: dict[str, Any], fits: bool) -> None:
    case = _case()
    reason = cases.match_reason(case, clue(**event_kw), POLICY)
    assert (reason is not None) == fits, reason


def test_match_reason_names_what_fits() -> None:
    reason = cases.match_reason(_case(), clue(), POLICY)
    assert reason == "same jurisdiction; 3.5 h after last seen; age 7 ~ 6; sex female; place 西安北站候车室"


def test_naming_the_case_links_whatever_the_kind() -> None:
    case = _case()
    event = clue(kind="fake_paternity_test_found", jurisdiction="honghe", case_id=case.case_id)
    assert cases.match_reason(case, event, POLICY) == "names the case"


def test_clue_is_linked_to_the_right_open_case_and_not_to_a_closed_one() -> None:
    boy = _case(sex="male", age=9, place="钟楼")
    girl = _case()
    closed_girl = cases.close_case(_case(), resolution(girl.case_id), T0)
    assert isinstance(closed_girl, CaseChange) and closed_girl.status == "closed"
    found = cases.best_match([boy, girl, closed_girl], clue(), POLICY)
    assert found is not None and found[0].case_id == girl.case_id
    assert cases.best_match([closed_girl], clue(), POLICY) is None


def test_a_clue_naming_an_open_case_joins_it_even_when_another_fits_more_descriptors() -> None:
    named = _case(sex="male", age=9, place="钟楼")
    better_fit = _case()
    event = clue(case_id=named.case_id)  # fits `better_fit` on age, sex, place and time
    assert cases.match_reason(better_fit, event, POLICY) is not None
    found = cases.best_match([better_fit, named], event, POLICY)
    assert found is not None and found == (named, "names the case")


def test_linking_forwards_the_clue_once() -> None:
    case, event = _case(), clue()
    linked = cases.link_clue(case, event, "why", T0)
    assert linked is not None and linked.change == "clue_linked"
    assert linked.last_clue is not None and linked.last_clue.reason == "why"
    assert cases.link_clue(linked, event, "why", T0) is None


def test_a_linked_clues_referral_is_grouped_under_the_case_and_stays_answerable() -> None:
    case, event = _case(), clue()
    state = lifecycle.track_referral(referral(event, "police", rule_id="xian.unknown_origin_child_dna"))
    assert not state.grouped and state.next_deadline is None
    grouped = cases.group_referral(state, case.case_id, "place 西安北站候车室", T0)
    assert grouped is not None and grouped.grouped and grouped.case_id == case.case_id
    assert grouped.next_deadline is None and grouped.status == "sent"  # no deadline of its own; still answered
    assert grouped.history[-1].what == "grouped" and grouped.history[-1].detail == "place 西安北站候车室"
    assert cases.group_referral(grouped, case.case_id, "again", T0) is None  # a replay changes nothing
    answered = lifecycle.apply_response(grouped, ReferralResponse(referral_id=grouped.id, answer="acknowledged",
                                                                  agency="police"), T0)
    assert answered.applied and answered.state.status == "acknowledged" and answered.state.grouped


def test_a_further_report_is_grouped() -> None:
    case = _case()
    again = missing_child(case_id=case.case_id)
    assert isinstance(again, MissingChildReport)
    grouped = cases.group_report(case, again)
    assert grouped is not None and grouped.change == "report_grouped" and grouped.grouped_reports == (again.event_id,)
    assert cases.group_report(grouped, again) is None


@pytest.mark.parametrize("agency", ["police", "police.command_center", "police.local_station"])
def test_police_close_a_case(agency: str) -> None:
    case = _case()
    closed = cases.close_case(case, resolution(case.case_id, agency=agency), T0)
    assert isinstance(closed, CaseChange) and closed.status == "closed" and closed.outcome == "found_alive"


@pytest.mark.parametrize("agency", [None, "civil_affairs", "womens_federation"])
def test_anyone_else_is_refused_and_counted(agency: str | None) -> None:
    case = _case()
    refusal = cases.close_case(case, resolution(case.case_id, agency=agency), T0)
    assert isinstance(refusal, cases.Refusal) and refusal.counted
    assert refusal.case is not None and refusal.case.status == "open" and refusal.case.change == "close_refused"


def test_other_kinds_never_close() -> None:
    case = _case()
    refusal = cases.close_case(case, clue(case_id=case.case_id), T0)
    assert isinstance(refusal, cases.Refusal) and refusal.counted


def test_a_replayed_resolution_is_not_counted() -> None:
    case = _case()
    event = resolution(case.case_id)
    closed = cases.close_case(case, event, T0)
    assert isinstance(closed, CaseChange)
    replay = cases.close_case(closed, event, T0)
    assert isinstance(replay, cases.Refusal) and not replay.counted
    other = cases.close_case(closed, resolution(case.case_id), T0)
    assert isinstance(other, cases.Refusal) and other.counted


def test_policy_file_is_validated(tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "cases.yaml"
    bad.write_text("clue_kinds: [no_such_kind]\nwindow: P1D\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown event kind"):
        cases.CasePolicy.load(bad)
