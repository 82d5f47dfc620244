"""Which missing-child case a message belongs to: the one rule every service applies.

A message belongs to the case it names (`case_id`); a missing-child report that names none opens
its own case, named by its `event_id`. Events, referrals, alerts and tracked states all carry the
same three facts (kind, event id, named case), so they all ask `case_of`.
"""

from __future__ import annotations

import uuid

from rules.catalog import MISSING_CHILD
from schemas.events import Event
from schemas.referrals import Referral


def case_of(kind: str, event_id: uuid.UUID, case_id: uuid.UUID | None) -> uuid.UUID | None:
    """The case of a message about event `event_id` of `kind` that names `case_id` (or none)."""
    if case_id is None and kind == MISSING_CHILD:
        return event_id
    return case_id


def event_case(event: Event) -> uuid.UUID | None:
    """The case an event belongs to (None: it is about no case)."""
    return case_of(event.kind, event.event_id, event.case_id)


def report_case(report: Event) -> uuid.UUID:
    """The case a missing-child report opens or joins; it always has one."""
    case_id = case_of(report.kind, report.event_id, report.case_id)
    if case_id is None:
        raise ValueError(f"a {report.kind} event is not a missing-child report")
    return case_id


def referral_case(referral: Referral) -> uuid.UUID | None:
    """The case a referral belongs to: its event's."""
    return case_of(referral.kind, referral.event_id, referral.case_id)

