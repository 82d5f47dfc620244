"""Event factories for the broadcast tests (unit and integration): reports full of private fields."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from schemas.events import Event, parse_event_obj

T0 = dt.datetime(2026, 11, 20, 6, 0, tzinfo=dt.UTC)

#: Every value a broadcast must never carry: the scan test looks for each one in every message.
SECRETS = {
    "id_number": "110101201401019999",
    "address": "SECRET-ADDRESS 幸福路88号3单元",
    "description": "SECRET-DESCRIPTION 母亲王某某 电话13900000000",
    "ethnicity": "SECRET-ETHNICITY",
    "schooling_needs": "SECRET-SCHOOLING",
    "reporter_role": "parent_or_guardian",
    "details": "SECRET-DETAIL-VALUE",
    "suspicion": "SECRET-SUSPICION",
    "exact_lat": "34.26163",
    "exact_lon": "108.94227",
}


def _iso(t: dt.datetime) -> str:
    return t.isoformat()


def report_dict(case_id: uuid.UUID, *, last_seen_at: dt.datetime = T0, exercise: bool = False,
                with_coordinates: bool = True) -> dict[str, Any]:
    """A guardian's missing-child report full of private fields (see SECRETS)."""
    return {
        "event_id": str(case_id), "kind": "child_missing_reported", "jurisdiction": "xian",
        "occurred_at": _iso(last_seen_at), "reported_at": _iso(last_seen_at + dt.timedelta(minutes=10)),
        "reporter": {"agency": None, "role": SECRETS["reporter_role"]},
        "person": {"age": 6, "sex": "female", "nationality": "CN", "name": "李小红",
                   "id_number": SECRETS["id_number"], "ethnicity": SECRETS["ethnicity"],
                   "schooling_needs": SECRETS["schooling_needs"], "disability": "hearing",
                   "distinguishing_features": "红色外套，扎马尾", "photo_url": "https://photos.example/lxh.jpg"},
        "location": {"place": "钟楼", "address": SECRETS["address"]},
        "description": SECRETS["description"],
        "suspicion": SECRETS["suspicion"],
        "details": {"family_note": SECRETS["details"]},
        "exercise": exercise,
        "last_seen_at": _iso(last_seen_at),
        "last_seen_location": {"place": "西安市钟楼", "address": SECRETS["address"],
                               **({"lat": float(SECRETS["exact_lat"]), "lon": float(SECRETS["exact_lon"])}
                                  if with_coordinates else {})},
    }


def release_dict(case_id: uuid.UUID, *, agency: str | None = "police.command_center", consent: bool = True,
                 exercise: bool = False, at: dt.datetime = T0, contact: str = "029-110-0000") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "kind": "missing_child_info_release", "jurisdiction": "xian",
        "occurred_at": _iso(at), "reported_at": _iso(at),
        "reporter": {"agency": agency, "role": "police_officer" if agency else "parent_or_guardian"},
        "case_id": str(case_id), "guardian_consent": consent, "public_contact": contact,
        "exercise": exercise,
    }


def resolved_dict(case_id: uuid.UUID, *, agency: str | None = "police", at: dt.datetime = T0,
                  exercise: bool = False) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "kind": "case_resolved", "jurisdiction": "xian",
        "occurred_at": _iso(at), "reported_at": _iso(at),
        "reporter": {"agency": agency, "role": "police_officer" if agency else "public"},
        "case_id": str(case_id), "outcome": "found_alive", "exercise": exercise,
    }


def report(case_id: uuid.UUID, **kw: Any) -> Event:
    return parse_event_obj(report_dict(case_id, **kw))


def release(case_id: uuid.UUID, **kw: Any) -> Event:
    return parse_event_obj(release_dict(case_id, **kw))


def resolved(case_id: uuid.UUID, **kw: Any) -> Event:
    return parse_event_obj(resolved_dict(case_id, **kw))


def assert_public(xml: str) -> None:
    """No private value of a report made here appears in `xml` (the scan of every broadcast)."""
    leaked = {name: value for name, value in SECRETS.items() if value in xml}
    assert not leaked, f"private fields in a broadcast: {sorted(leaked)}"
