"""Need-to-know projection and deadlines."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.catalog import catalog
from rules.deadlines import Deadlines
from rules.engine import RuleBook, route
from rules.errors import DeadlinesError, ProjectionError
from rules.projection import _picked, event_values, load_projections, paths_for, project, projector

FULL_PERSON = {"age": 9, "sex": "female", "nationality": "CN", "disability": "hearing",
               "name": "Secret Name", "id_number": "110101201501010000",
               "schooling_needs": "grade 3", "origin_unknown": True, "parents_found": False,
               "wishes": ["return_home"], "willing_to_train": True, "photo_url": "http://x/y.jpg"}
LOCATION = {"place": "Xi'an North station", "address": "Room 5, Lane 3", "lat": 34.3, "lon": 108.9}


def _flat(subject: dict[str, Any]) -> set[str]:
    out = set()
    for k, v in subject.items():
        if isinstance(v, dict) and k in ("person", "location", "reporter"):
            out |= {f"{k}.{kk}" for kk in v}
        else:
            out.add(k)
    return out


def _allowed(paths: tuple[str, ...]) -> set[str]:
    out = set()
    for p in paths:
        if p in ("person", "location", "reporter"):
            out |= {f"{p}.{k}" for k in ("age", "sex", "nationality", "disability", "name",
                                          "id_number", "schooling_needs", "origin_unknown",
                                          "parents_found", "wishes", "willing_to_train",
                                          "photo_url", "is_child", "is_foreign", "place",
                                          "address", "lat", "lon", "role", "agency")}
        else:
            out.add(p)
    return out


@pytest.mark.parametrize("agency", sorted(catalog().agencies))
def test_subject_holds_only_declared_fields(agency: str, event: Any) -> None:
    ev = event("rescued_victim_needs_assistance", "xx_city", FULL_PERSON, location=LOCATION,
               description="long account", suspicion="trafficking", details={"x": 1})
    subject = project(ev, agency)
    assert _flat(subject) <= _allowed(paths_for(agency)), subject


@pytest.mark.parametrize("agency", ["publicity", "cyberspace", "radio_tv", "press_publication"])
def test_public_bodies_get_public_fields_only(agency: str, event: Any) -> None:
    ev = event("missing_child_info_release", "xian", FULL_PERSON, location=LOCATION)
    assert project(ev, agency) == {"kind": "missing_child_info_release",
                                   "person": {"age": 9, "sex": "female"},
                                   "location": {"place": "Xi'an North station"}}


def test_police_and_office_get_everything(event: Any) -> None:
    ev = event("child_missing_reported", "xian", FULL_PERSON, location=LOCATION,
               description="seen with a man")
    for agency in ("police", "police.command_center", "anti_trafficking_office"):
        s = project(ev, agency)
        assert s["person"]["name"] == "Secret Name" and s["location"]["address"] == "Room 5, Lane 3"
        assert s["description"] == "seen with a man" and "last_seen_location" in s


def test_education_and_default(event: Any) -> None:
    ev = event("rescued_child_needs_schooling", "xx_city", FULL_PERSON, location=LOCATION)
    assert project(ev, "education") == {"kind": "rescued_child_needs_schooling", "person": {
        "age": 9, "sex": "female", "schooling_needs": "grade 3", "disability": "hearing"}}
    default = project(ev, "trade_union")
    assert "name" not in default["person"] and "address" not in default.get("location", {})
    assert "description" not in default


def test_sub_unit_uses_parent_agency_entry() -> None:
    table = load_projections()
    assert table.fields_for("civil_affairs.child_welfare_institution") == table.fields_for(
        "civil_affairs")
    assert table.fields_for("justice.legal_aid_institution") == table.default


def test_rule_fields_add_and_drop(event: Any) -> None:
    ev = event("rescued_victim_needs_assistance", "xx_city", FULL_PERSON)
    assert "name" in project(ev, "health", add=["person.name"])["person"]
    assert "age" not in project(ev, "health", drop=["person.age"])["person"]


def test_referral_subject_is_the_projection(book: RuleBook, event: Any) -> None:
    ev = event("missing_child_info_release", "xian", FULL_PERSON, location=LOCATION)
    for r in route(ev, book):
        assert r.subject == project(ev, r.agency)


def test_projection_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("default: [person.shoe_size]\nagencies: {}\n")
    with pytest.raises(ProjectionError, match=r"unknown event field 'person\.shoe_size'"):
        load_projections(bad)
    bad.write_text("default: [kind]\nagencies: {nobody: [kind]}\n")
    with pytest.raises(ProjectionError, match="unknown agency 'nobody'"):
        load_projections(bad)


# ------------------------------------------------------------------------------- deadlines


def test_deadlines_cover_every_level() -> None:
    dl = Deadlines.load()
    assert set(dl.deadlines) == set(catalog().urgency_levels)
    assert dl.for_level("immediate").ack_within == dt.timedelta(minutes=5)
    assert dl.for_level("emergency").ack_within == dt.timedelta(minutes=2)
    assert dl.for_level("prompt").ack_within == dt.timedelta(hours=1)
    assert dl.for_level("priority").ack_within == dt.timedelta(hours=4)
    assert dl.for_level("fast_track").ack_within == dt.timedelta(days=1)
    assert dl.for_level("unspecified") == dl.for_level("unspecified").model_copy()
    assert dl.for_level("unspecified").ack_within == dt.timedelta(days=1)
    assert dl.for_level("unspecified").due_within is None


@pytest.mark.parametrize(("text", "message"), [
    ("deadlines: {}", "no deadline for urgency level(s): before_transfer"),
    ("deadlines:\n  soon: {ack_within: PT1M, due_within: null}", "no deadline for urgency"),
    ("deadlines:\n  emergency: {ack_within: PT5M, due_within: PT1M}",
     "due_within is shorter than ack_within"),
    ("deadlines:\n  emergency: {ack_within: -PT5M, due_within: null}", "ack_within must be positive"),
])
def test_deadline_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(text)
    with pytest.raises(DeadlinesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Deadlines.load(path)


def test_unknown_level_rejected(tmp_path: Path) -> None:
    dl = Deadlines.load()
    data = {k: v.model_dump() for k, v in dl.deadlines.items()}
    data["soon"] = {"ack_within": dt.timedelta(minutes=1), "due_within": None}
    with pytest.raises(ValueError, match="unknown urgency level"):
        Deadlines(deadlines=data)


def test_projections_of_one_event_share_its_values_but_not_what_a_rule_adds(event: Any) -> None:
    """The router projects an event once per agency from values read once; a rule that adds a
    derived field to a whole object (police get all of `person`, plus `person.is_child`) adds it
    to that referral only."""
    ev = event("rescued_victim_needs_assistance", "xx_city", FULL_PERSON, location=LOCATION)
    values = event_values(ev)
    widened = project(ev, "police", add=["person.is_child"], values=values)
    assert widened["person"]["is_child"] is True and widened["person"]["name"] == "Secret Name"
    plain = project(ev, "police", values=values)
    assert "is_child" not in plain["person"] and plain == project(ev, "police")
    assert project(ev, "health", add=["person.is_child"], values=values)["person"]["is_child"] is True


@pytest.mark.parametrize("agency", sorted(catalog().agencies))
def test_a_projection_reads_the_same_values_field_by_field_and_from_the_whole_event(agency: str, event: Any) -> None:
    """Values read for a few fields (each alone) and for any (the whole event dumped) project alike."""
    for ev in (event("rescued_victim_needs_assistance", "xx_city", FULL_PERSON, location=LOCATION,
                     details={"a": 1, "b": None, "c": ""}, description=""),
               event("child_missing_reported", "xian", {"age": 6, "wishes": []}),
               event("transport_hub_suspected_trafficking", "xx_city", None)):
        for add in ((), ("person.is_child", "last_seen_at", "outcome")):
            p = projector(agency, add)
            assert p.subject(event_values(ev, [p])) == p.subject(event_values(ev)), (agency, add)


@pytest.mark.parametrize("agency", sorted(catalog().agencies))
def test_a_plain_projection_writes_the_subject_each_field_looked_at_alone_would(agency: str, event: Any) -> None:
    """Projections of whole values and of model fields take a short path (`Projector.plain`):
    it gives the subject that looking at each field on its own gives, in the same order, also
    when a rule adds fields to a whole value or a run of fields comes back after another."""
    events = (event("rescued_victim_needs_assistance", "xx_city", {**FULL_PERSON, "name": "", "wishes": []},
                    location=LOCATION, description=""),
              event("child_missing_reported", "xian", {"age": 6, "wishes": []}),
              event("transport_hub_suspected_trafficking", "xx_city", None))
    for add in ((), ("person.name", "location.lat", "person.sex", "occurred_at"), ("person", "person.age")):
        p = projector(agency, add)
        assert p.plain is not None, (agency, add)
        for ev in events:
            values = event_values(ev, [p])
            subject = p.subject(values)
            assert list(_walk(subject)) == list(_walk(p.subject_step_by_step(event_values(ev, [p])))), (agency, add)


def test_a_derived_property_or_a_details_key_takes_the_step_by_step_path() -> None:
    assert projector("health", ("person.is_child",)).plain is None
    assert projector("health", ("details.vehicle",)).plain is None


def _walk(value: Any) -> Any:
    """A value with the order of every object's keys (dict equality ignores it; the bytes do not)."""
    if isinstance(value, dict):
        return [(k, _walk(v)) for k, v in value.items()]
    return value


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=2), inner, max_size=3),
                     max_leaves=8)


@given(_JSON)
def test_unknown_parts_are_the_empty_string_list_and_object(value: Any) -> None:
    """`_picked` tests a value's type, not `v not in ("", [], {})` (slow): the same values are unknown."""

    def by_comparison(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if v not in ("", [], {})} or None
        return None if value in ("", [], {}) else value

    assert _picked(value) == by_comparison(value)
    assert type(_picked(value)) is type(by_comparison(value))


@pytest.mark.parametrize("reported_at", [dt.datetime(2026, 12, 6, 8, 0, 0, 250000, tzinfo=dt.UTC),
                                         dt.datetime(9999, 12, 31, 23, 0, tzinfo=dt.UTC)])
def test_both_deadlines_at_once_are_each_deadline(reported_at: dt.datetime) -> None:
    """`deadlines_of` (the router's, both at once) gives `ack_by` and `due_by` of every level, also
    for a report dated at the end of time (the last instant, not an overflow)."""
    table = Deadlines.load()
    for level in catalog().urgency_levels:
        assert table.deadlines_of(level, reported_at) == (table.ack_by(level, reported_at),
                                                          table.due_by(level, reported_at)), level
