"""Projection of a missing-child report onto the public set (`PublicChild`).

An allowlist, on purpose: the report also carries an ID number, an address, a free-text
description and the reporter, none of which may reach a broadcast.
"""

from __future__ import annotations

from schemas.broadcast import PublicChild
from schemas.events import MissingChildReport


def public_child(report: MissingChildReport) -> PublicChild:
    """The fields of `report` that a public urgent notice may carry."""
    person, where = report.person, report.last_seen_location
    return PublicChild(
        name=person.name,
        age=person.age,
        sex=person.sex,
        distinguishing_features=person.distinguishing_features,
        photo_url=person.photo_url,
        last_seen_at=report.last_seen_at,
        last_seen_place=where.place,
        lat=where.lat,
        lon=where.lon,
    )
