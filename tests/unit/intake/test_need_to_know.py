"""Need-to-know: every agency's referral subject holds only what its declaration lists.

Every (jurisdiction, kind) the rule packs cover is routed with an event whose every field is
filled, and each referral's subject is checked against `rules/catalog/projections.yaml` (the
agency's list, after its rule's `fields` add/drop). Independent of that file, the test also
pins the promises made to people: broadcast channels get public fields only, education gets
the child's age and schooling needs but nothing of the investigation, and identifying fields
go only to the bodies that investigate or triage.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from rules.deadlines import Deadlines
from rules.engine import RuleBook, load_rulebook, route
from rules.projection import paths_for
from schemas.events import parse_event_obj
from schemas.referrals import Referral

T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
PUBLIC = {"kind", "person.age", "person.sex", "location.place"}
BROADCAST_AGENCIES = ("publicity", "cyberspace", "radio_tv", "press_publication")
IDENTIFYING = {"person.name", "person.id_number", "person.photo_url", "person.distinguishing_features",
               "location.address", "location.lat", "location.lon", "description", "reporter"}
INVESTIGATIVE = {"description", "suspicion", "details", "reporter", "person.name", "person.id_number",
                 "location.address", "occurred_at"}
#: Bodies whose duty needs the identity (they investigate, triage, or do residence procedures).
MAY_IDENTIFY = ("police", "anti_trafficking_office", "immigration")


def full_event(kind: str, jurisdiction: str) -> dict[str, Any]:
    """Every field filled, so that a projection leaking a field cannot hide behind a null."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}/{jurisdiction}")), "kind": kind,
        "jurisdiction": jurisdiction, "occurred_at": T0.isoformat(),
        "reported_at": (T0 + dt.timedelta(minutes=5)).isoformat(),
        "reporter": {"agency": "womens_federation", "role": "womens_federation_cadre"},
        "person": {"age": 9, "sex": "female", "nationality": "CN", "disability": "none", "ethnicity": "Yi",
                   "wishes": ["return_home"], "willing_to_return_home": True,
                   "cannot_or_will_not_return_home": False, "willing_to_train": True, "poor": True,
                   "coerced": True, "adopted": False, "origin_unknown": True, "parents_found": False,
                   "schooling_needs": "grade 3, missed a year", "name": "SECRET-NAME",
                   "id_number": "SECRET-ID", "distinguishing_features": "SECRET-FEATURES",
                   "photo_url": "https://example.invalid/SECRET-PHOTO"},
        "location": {"place": "某县", "address": "SECRET-ADDRESS", "lat": 25.0, "lon": 102.7},
        "description": "SECRET-DESCRIPTION", "suspicion": "trafficking_or_related_crime",
        "details": {"note": "SECRET-DETAIL"}, "case_id": str(uuid.uuid4()),
    }
    if kind == "child_missing_reported":
        event |= {"last_seen_at": T0.isoformat(), "last_seen_location": {"place": "广场"}}
    elif kind == "case_resolved":
        event |= {"outcome": "found_alive"}
    elif kind == "missing_child_info_release":
        event |= {"guardian_consent": True, "public_contact": "110"}
    return event


def _leaves(subject: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for key, value in subject.items():
        if isinstance(value, dict) and key in {"person", "location", "reporter", "last_seen_location"}:
            out |= {f"{key}.{k}" for k in value}
        else:
            out.add(key)
    return out


def _allowed(paths: tuple[str, ...]) -> set[str]:
    """Declared paths, with a whole object (`person`) standing for each of its fields."""
    return set(paths)


def _covered(leaf: str, declared: set[str]) -> bool:
    return leaf in declared or leaf.split(".")[0] in declared


Routed = list[tuple[dict[str, Any], Referral]]
RuleFields = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]


@pytest.fixture(scope="module")
def routed() -> Routed:
    book: RuleBook = load_rulebook()
    deadlines = Deadlines.load()
    out = []
    for (jurisdiction, kind) in sorted(book.index):
        raw = full_event(kind, jurisdiction)
        for referral in route(parse_event_obj(raw), book, deadlines=deadlines):
            out.append((raw, referral))
    assert len(out) > 100, "the packs should cover many (jurisdiction, kind) pairs"
    return out


@pytest.fixture(scope="module")
def rule_fields() -> RuleFields:
    book = load_rulebook()
    out: RuleFields = {}
    for slots in book.index.values():
        for slot in slots:
            for v in slot.variants:
                out[v.rule_id] = (v.fields_add, v.fields_drop)
    return out


def test_every_subject_matches_its_agency_declaration(routed: Routed, rule_fields: RuleFields) -> None:
    checked: set[str] = set()
    for _, referral in routed:
        base_rule = referral.rule_id.split("#")[0]
        add, drop = rule_fields.get(base_rule, ((), ()))
        declared = _allowed(paths_for(referral.agency, add, drop))
        leaked = {leaf for leaf in _leaves(referral.subject) if not _covered(leaf, declared)}
        assert not leaked, f"{referral.agency} via {referral.rule_id} got undeclared {sorted(leaked)}"
        checked.add(referral.agency)
    print(f"need-to-know: {len(routed)} referrals to {len(checked)} agencies checked")


def test_broadcast_channels_receive_public_fields_only(routed: Routed) -> None:
    for _, referral in routed:
        if referral.agency in BROADCAST_AGENCIES:
            assert _leaves(referral.subject) <= PUBLIC, (referral.agency, referral.rule_id)
    for agency in BROADCAST_AGENCIES:
        assert set(paths_for(agency)) <= PUBLIC, agency


def test_education_gets_age_and_schooling_not_the_investigation(routed: Routed) -> None:
    declared = set(paths_for("education"))
    assert {"person.age", "person.schooling_needs"} <= declared
    assert not declared & INVESTIGATIVE
    for _, referral in routed:
        if referral.agency == "education":
            assert not _leaves(referral.subject) & INVESTIGATIVE, referral.rule_id


def test_identifying_fields_only_where_the_duty_needs_them(routed: Routed) -> None:
    for _, referral in routed:
        leaves = _leaves(referral.subject)
        if referral.agency.split(".")[0] in MAY_IDENTIFY:
            continue
        assert not leaves & IDENTIFYING, (referral.agency, referral.rule_id, sorted(leaves & IDENTIFYING))
        assert "SECRET" not in referral.model_dump_json(), (referral.agency, referral.rule_id)
