"""The domain rules every service shares, each decided in one place: who is police, which case a
message belongs to, and the event kinds the bus acts on by name."""

from __future__ import annotations

import typing
import uuid

import pytest
from pydantic import BaseModel

from rules.catalog import CASE_RESOLVED, INFO_RELEASE, MISSING_CHILD, catalog, is_police
from schemas.cases import case_of, event_case, referral_case, report_case
from schemas.events import BroadcastRelease, CaseResolution, MissingChildReport

from .alerts.conftest import clue, missing_child, referral, resolution


@pytest.mark.parametrize(("agency", "expected"), [
    ("police", True), ("police.command_center", True), ("police.local_station", True),
    ("civil_affairs", False), ("publicity", False), (None, False), ("no_such_agency", False),
])
def test_only_police_and_their_units_are_police(agency: str | None, expected: bool) -> None:
    assert is_police(agency) is expected


def test_every_police_unit_of_the_catalog_is_police() -> None:
    units = [code for code in catalog().agencies if code.startswith("police.")]
    assert units and all(is_police(code) for code in units)


@pytest.mark.parametrize(("kind", "model"), [
    (MISSING_CHILD, MissingChildReport), (CASE_RESOLVED, CaseResolution), (INFO_RELEASE, BroadcastRelease),
])
def test_the_kinds_acted_on_by_name_are_the_catalogs_and_the_models(kind: str, model: type[BaseModel]) -> None:
    assert kind in catalog().event_kinds
    assert typing.get_args(model.model_fields["kind"].annotation) == (kind,)


def test_a_report_naming_no_case_opens_its_own() -> None:
    report = missing_child()
    assert event_case(report) == report_case(report) == report.event_id
    assert referral_case(referral(report, "police.command_center")) == report.event_id


def test_a_message_naming_a_case_belongs_to_it() -> None:
    case = uuid.uuid4()
    assert event_case(missing_child(case_id=case)) == case
    assert event_case(clue(case_id=case)) == case
    assert event_case(resolution(case)) == case
    assert referral_case(referral(clue(case_id=case), "railway", rule_id="x.rail")) == case


def test_other_messages_belong_to_no_case() -> None:
    event = clue()
    assert event_case(event) is None and referral_case(referral(event, "railway", rule_id="x.rail")) is None
    assert case_of("child_of_unknown_origin_found", uuid.uuid4(), None) is None
    with pytest.raises(ValueError, match="not a missing-child report"):
        report_case(event)
