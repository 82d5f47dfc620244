"""`route` and `route_written` take short paths (rules/engine.py `_build`, `Assignment`; rules/
projection.py `EventValues`, shared `Projector`s; schemas/referrals.py `referral_ids` of the
event id's JSON): each referral must be the one the plain path builds — the rules fired for the
event looked at afresh, the referral validated from its values, its id `referral_id_for`, its
subject projected field by field from the whole event, its deadlines from the table — for every
kind in every jurisdiction, dates before and after the plans ended, and a generated variety of
events."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from rules.catalog import catalog
from rules.deadlines import Deadlines
from rules.engine import (
    Duty,
    DutyFields,
    RuleBook,
    _duties,
    _duty_order,
    _fired,
    _unrouted,
    compile_packs,
    load_packs,
    load_rulebook,
    route,
    route_written,
)
from rules.projection import EventValues, _compiled, _written_known, event_values, projector
from schemas.events import Event, parse_event_obj
from schemas.referrals import Referral, referral_id_for, referral_ids

KINDS = sorted(catalog().event_kinds)
JURISDICTIONS = sorted(catalog().jurisdictions)
PERSONS: list[dict[str, Any] | None] = [
    None, {}, {"age": 6, "sex": "male"}, {"age": 16, "sex": "female", "willing_to_train": True},
    {"age": 24, "sex": "female", "nationality": "VN", "wishes": ["stay_in_marriage"], "name": "",
     "disability": "intellectual", "cannot_or_will_not_return_home": True},
    {"age": 3, "name": "王\"小明\\", "wishes": [], "id_number": ""}]
#: Before and after the 2013 plans ended, and long after every plan ended.
DATES = ("2014-03-01T10:00:00+08:00", "2022-01-01T00:00:00.5Z", "2031-06-30T23:59:59-05:30")


def raw_event(n: int, kind: str, jurisdiction: str, person: dict[str, Any] | None, at: str) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=n * 7919, version=4)), "kind": kind, "jurisdiction": jurisdiction,
        "occurred_at": at, "reported_at": at, "exercise": n % 3 == 0,
        "reporter": {"role": "public", "agency": "police.command_center"} if n % 2 else {"role": "teacher"}}
    if person is not None:
        raw["person"] = person
    if n % 2:
        raw["location"] = {"place": "车站", "address": "Lane 3", "lat": 34.25}
    if n % 5 == 0:
        raw.update(details={"vehicle": "bus", "n": 2, "empty": ""}, description="", suspicion="trafficking")
    if kind == "child_missing_reported":
        child = {k: v for k, v in (person or {}).items() if k != "age" or v < 18}
        raw.update(person=child, last_seen_at=at, last_seen_location={"place": "广场"})
    if kind in ("case_resolved", "missing_child_info_release") or n % 7 == 0:
        raw["case_id"] = str(uuid.UUID(int=n, version=4))
    if kind == "case_resolved":
        raw["outcome"] = "found_alive"
    if kind == "missing_child_info_release":
        raw.update(guardian_consent=True, public_contact="110")
    return raw


def every_kind_everywhere() -> list[Event]:
    events = []
    n = 0
    for jurisdiction in JURISDICTIONS:
        for kind in KINDS:
            for person in PERSONS:
                n += 1
                events.append(parse_event_obj(raw_event(n, kind, jurisdiction, person, DATES[n % len(DATES)])))
    return events


def plain_duties(event: Event, book: RuleBook) -> list[Duty]:
    """The rule evaluation without the book's remembered assignments."""
    if not catalog().event_kinds[event.kind].routed:
        return []
    deferral = book.deferral(event.jurisdiction, event.occurred_at.date())
    duties: list[Duty] = []
    if deferral is not None:
        duties = _duties(_fired(event, book.deferred_index, deferral.key))
    if not duties:
        duties = _duties(_fired(event, book.index, event.jurisdiction))
    if not duties:
        duties = list(_unrouted(book, event.jurisdiction, deferral).duties)
    return sorted(duties, key=_duty_order)


def plain_route(event: Event, book: RuleBook, deadlines: Deadlines) -> list[Referral]:
    """Each referral validated from its values, every part found on its own."""
    values = event_values(event)  # the whole event, every field
    out = []
    for d in plain_duties(event, book):
        t = d.template
        out.append(Referral(
            referral_id=referral_id_for(event.event_id, t.agency, t.rule_id, t.role),
            event_id=event.event_id, kind=event.kind, jurisdiction=event.jurisdiction, decided_by=t.decided_by,
            agency=t.agency, role=t.role, action=t.action, action_zh=t.action_zh, urgency=t.urgency,
            reported_at=event.reported_at, ack_by=deadlines.ack_by(t.urgency, event.reported_at),
            due_by=deadlines.due_by(t.urgency, event.reported_at), rule_id=t.rule_id, citation=t.citation,
            constraints=t.constraints, exercise=event.exercise, expired_plan=event.occurred_at.date() > d.expires,
            case_id=event.case_id, subject=d.projector.subject_step_by_step(values)))
    return out


@pytest.fixture(scope="module")
def deadlines() -> Deadlines:
    return Deadlines.load()


#: A referral's own fields, its duty's: what outputs read of `WrittenReferral.duty`.
DUTY_FIELDS = ("decided_by", "agency", "role", "action", "action_zh", "urgency", "rule_id", "citation", "constraints")


def assert_as_plain(event: Event, book: RuleBook, deadlines: Deadlines) -> None:
    expected = plain_route(event, book, deadlines)
    messages = [r.model_dump_json().encode() for r in expected]
    routed = route(event, book, deadlines=deadlines)
    assert routed == expected, event
    assert [(r.model_fields_set, r.__pydantic_extra__, r.__pydantic_private__) for r in routed] == \
        [(r.model_fields_set, r.__pydantic_extra__, r.__pydantic_private__) for r in expected]
    assert [(hash(r.referral_id), r.referral_id.is_safe) for r in routed] == \
        [(hash(r.referral_id), r.referral_id.is_safe) for r in expected]
    # The same bytes too: each subject's fields in the same order (equal dicts may differ there).
    assert [r.model_dump_json().encode() for r in routed] == messages
    written = route_written(event, book, deadlines=deadlines)
    assert [w.value for w in written] == messages
    assert [w.referral for w in written] == expected
    assert [[getattr(w.duty, f) for f in DUTY_FIELDS] for w in written] == \
        [[getattr(r, f) for f in DUTY_FIELDS] for r in expected]
    assert [w.duty for w in written] == [DutyFields.of(r) for r in expected]


def test_every_kind_in_every_jurisdiction_routes_as_the_plain_path(book: RuleBook, deadlines: Deadlines) -> None:
    events = every_kind_everywhere()
    for event in events:
        assert_as_plain(event, book, deadlines)
    assert sum(map(len, map(plain_duties, events, [book] * len(events)))) > 1000
    # Both ways of taking the subjects from the event ran (`Assignment.dump_for_messages`): the
    # police's written straight from the event, and from one dump shared with other projections.
    assert {a.dump_for_messages for a in book.assignments.values()} == {False, True}
    assert {a.dump_for_models for a in book.assignments.values()} == {False, True}


def test_a_book_that_routed_other_events_first_routes_each_as_a_fresh_book(deadlines: Deadlines) -> None:
    """The book remembers each set of fired rules' assignment: the order events come in changes
    nothing."""
    events = every_kind_everywhere()
    ahead, behind = compile_packs(load_packs()), compile_packs(load_packs())
    forward = [route(e, ahead, deadlines=deadlines) for e in events]
    backward = [route(e, behind, deadlines=deadlines) for e in reversed(events)][::-1]
    assert forward == backward
    assert len(ahead.assignments) == len(behind.assignments) > 10


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 2**40), kind=st.just("child_missing_reported") | st.sampled_from(KINDS),
       jurisdiction=st.sampled_from(JURISDICTIONS), at=st.sampled_from(DATES),
       person=st.none() | st.fixed_dictionaries({}, optional={
           "age": st.integers(0, 90), "sex": st.sampled_from(["female", "male", "unknown"]),
           "nationality": st.sampled_from(["CN", "VN", "MM"]), "name": st.text(max_size=4),
           "wishes": st.lists(st.sampled_from(["return_home", "stay_in_china"]), max_size=2),
           "disability": st.sampled_from(["none", "hearing"]), "poor": st.booleans(),
           "cannot_or_will_not_return_home": st.booleans(), "willing_to_train": st.booleans()}))
def test_a_generated_variety_of_events_routes_as_the_plain_path(
        n: int, kind: str, jurisdiction: str, at: str, person: dict[str, Any] | None) -> None:
    assert_as_plain(parse_event_obj(raw_event(n, kind, jurisdiction, person, at)), _book(), Deadlines.load())


def _book() -> RuleBook:
    return load_rulebook()


def _source() -> dict[str, str]:
    return {"file": "000_7dbaf2c26904eceb.txt", "clause": "第一条", "quote": "反拐工作"}


#: One kind, a rule that always fires and others that fire or not with the person: every set of
#: fired rules starts with the same rule, and the partner's duty names the leads of the set.
COMBINED: dict[str, Any] = {
    "jurisdiction": "national_2021", "parent": None, "generation_common": True,
    "triage": {"source": _source()},
    "rules": [
        {"key": "a_always", "when": {"kind": "fake_paternity_test_found"}, "lead": ["justice"],
         "action": "punish", "action_zh": "依法查处", "urgency": "unspecified", "source": _source(),
         "names": {"justice": "司法行政部门"}},
        {"key": "b_older", "when": {"kind": "fake_paternity_test_found",
                                    "all": [{"field": "person.age", "op": "ge", "value": 16}]},
         "lead": ["hr_social_security"], "action": "train", "action_zh": "职业培训", "urgency": "immediate",
         "source": _source(), "names": {"hr_social_security": "人力资源社会保障部门"}},
        {"key": "c_girls", "when": {"kind": "fake_paternity_test_found",
                                    "all": [{"field": "person.sex", "value": "female"}]},
         "lead": ["education"], "cooperating": ["justice"], "action": "school", "action_zh": "保障入学",
         "urgency": "unspecified", "source": _source(), "names": {"education": "教育部门", "justice": "司法"}},
        {"key": "d_partner", "when": {"kind": "fake_paternity_test_found",
                                      "all": [{"field": "person.age", "op": "lt", "value": 10}]},
         "lead": [], "candidate_lead": ["police"], "cooperating": ["womens_federation"], "action": "help",
         "action_zh": "配合相关部门", "urgency": "unspecified", "source": _source(),
         "names": {"womens_federation": "妇联"}},
    ],
}


def test_rules_that_fire_together_or_not_route_as_the_plain_path_in_any_order(
        tmp_path: Any, deadlines: Deadlines) -> None:
    """Sets of fired rules that share their first rule, routed in both orders by fresh books."""
    (tmp_path / "national_2021.yaml").write_text(yaml.safe_dump(COMBINED, allow_unicode=True))
    people = [{"age": age, "sex": sex} for age in (5, 12, 20) for sex in ("male", "female")]
    events = [parse_event_obj(raw_event(n, "fake_paternity_test_found", "national_2021", person, DATES[1]))
              for n, person in enumerate(people, 1)]
    for order in (events, events[::-1]):
        combined = compile_packs(load_packs(tmp_path))
        for event in order:
            assert_as_plain(event, combined, deadlines)
        assert len(combined.assignments) == len(events)


def test_agencies_that_need_to_know_the_same_fields_share_one_projection(book: RuleBook) -> None:
    """A missing child goes to four public bodies that may know the same few fields: the event is
    projected once for them, and their referrals share that subject."""
    assert projector("publicity").paths == projector("cyberspace").paths
    assert projector("publicity") is projector("cyberspace")
    assert projector("police") is not projector("publicity")
    event = parse_event_obj(raw_event(1, "child_missing_reported", "xian", {"age": 6, "sex": "male"}, DATES[1]))
    referrals = route(event, book)
    by_paths: dict[tuple[str, ...], list[Referral]] = {}
    for r in referrals:
        by_paths.setdefault(projector(r.agency).paths, []).append(r)
    shared = [group for group in by_paths.values() if len(group) > 1]
    assert shared, [r.agency for r in referrals]
    for group in shared:
        assert len({id(r.subject) for r in group}) == 1, [r.agency for r in group]


@given(st.uuids())
def test_referral_ids_of_an_event_id_as_uuid_text_or_utf8_are_the_same(event_id: uuid.UUID) -> None:
    suffix = "police|xian.report|lead"
    made = {referral_ids(e)(suffix) for e in (event_id, str(event_id), str(event_id).encode())}
    assert made == {referral_id_for(event_id, "police", "xian.report", "lead")}


def test_a_deadline_is_the_same_for_every_referral_of_one_urgency(book: RuleBook, deadlines: Deadlines) -> None:
    at = dt.datetime(2026, 12, 6, 8, 0, 0, 250000, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    event = parse_event_obj({**raw_event(2, "abandoned_infant_found", "xian", {"age": 0}, at.isoformat())})
    referrals = route(event, book, deadlines=deadlines)
    assert len({r.urgency for r in referrals}) < len(referrals)
    for r in referrals:
        assert (r.ack_by, r.due_by) == (deadlines.ack_by(r.urgency, at), deadlines.due_by(r.urgency, at))


#: Whole fields a projection may take, beside the police's own list.
WHOLE_FIELDS = ("kind", "occurred_at", "reporter", "person", "location", "description", "suspicion", "details",
                "last_seen_at", "last_seen_location", "outcome", "case_id")


@settings(max_examples=150, deadline=None)
@given(st.permutations(WHOLE_FIELDS).flatmap(lambda fields: st.tuples(
           st.integers(1, len(fields)).map(lambda n: tuple(fields[:n])), st.sets(st.sampled_from(WHOLE_FIELDS)))),
       st.sampled_from(KINDS), st.sampled_from(PERSONS), st.integers(1, 50))
def test_a_projection_of_whole_fields_is_its_fields_in_its_own_order_whatever_else_is_read(
        projection: tuple[tuple[str, ...], set[str]], kind: str, person: dict[str, Any] | None, n: int) -> None:
    """The police's subject is the event's known values as they are read (`Projector.subject`,
    `_reads_as_is`) only when those are its fields in its order: any other order, or fields read
    for other projections, gives the subject field by field."""
    paths, others = projection
    event = parse_event_obj(raw_event(n, kind, "xian", person, DATES[n % len(DATES)]))
    whole = _compiled(paths)
    heads = frozenset(paths) | others
    values = EventValues(event, heads)
    subject = whole.subject(values)
    expected = whole.subject_step_by_step(EventValues(event))
    assert list(subject.items()) == list(expected.items())


def test_a_copy_of_a_routed_referral_with_changes_leaves_the_others_as_they_were(
        book: RuleBook, deadlines: Deadlines) -> None:
    """The referrals `route` builds share one set of their fields (`built`): pydantic copies it for
    `model_copy`, so a copy given more fields changes no other referral."""
    first, second = (route(parse_event_obj(raw_event(n, "child_missing_reported", "xian", {}, DATES[1])), book,
                           deadlines=deadlines)[0] for n in (1, 2))
    before = set(second.model_fields_set)
    copied = first.model_copy(update={"schema_version": first.schema_version})
    assert "schema_version" in copied.model_fields_set
    assert second.model_fields_set == before == first.model_fields_set and "schema_version" not in before


#: What the police may know: every whole field of an event (rules/catalog/projections.yaml).
POLICE_FIELDS = frozenset(projector("police").heads)


def test_the_police_subject_is_written_in_one_call_when_nothing_in_it_is_unknown() -> None:
    """`Projector.subject_json` writes the police's subject with the event's own serializer
    (`_written_known`), the empty fields by default (`description`, `details`, `person.wishes`)
    left out: the bytes of the picked values, for every kind in every jurisdiction. An event that
    still holds an empty value (a name given as "", a detail "") takes the picking path."""
    written = fallen_back = 0
    for event in every_kind_everywhere():
        expected = to_json(EventValues(event, POLICE_FIELDS).known())
        direct = _written_known(event, POLICE_FIELDS)
        if direct is None:
            fallen_back += 1
        else:
            written += 1
            assert direct == expected, event
        assert projector("police").subject_json(EventValues(event, POLICE_FIELDS)) == expected
    assert written > 1000 and fallen_back > 1000, (written, fallen_back)
    plain = parse_event_obj(raw_event(2, "abandoned_infant_found", "xian", {"age": 3, "wishes": []}, DATES[1]))
    assert plain.description == "" and plain.details == {} and plain.person is not None and plain.person.wishes == ()
    assert _written_known(plain, POLICE_FIELDS) == to_json(EventValues(plain, POLICE_FIELDS).known())
    for unknown in ({"name": ""}, {"age": 3, "wishes": [], "id_number": ""}):
        odd = parse_event_obj(raw_event(2, "abandoned_infant_found", "xian", unknown, DATES[1]))
        assert _written_known(odd, POLICE_FIELDS) is None
