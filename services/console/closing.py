"""Closing a case from a desk: the police's resolution (`case_resolved`), published on the bus as
any police system would publish it, so the router, the alerts service and the broadcast act on it
as they do on every other (一长三包: only the police's resolution closes a case).

The console authenticates its officers itself (it is a bus service with its own Kafka principal,
as for answers); the resolution names the officer's agency as its reporter. Its `event_id` is
derived from the case and the outcome, so a double click, a reload or a second desk closing the
same case the same way publish one event, which every reader drops as a copy.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from bus.kafka.publisher import Publisher
from schemas.alerts import CaseChange
from schemas.events import CaseResolution, Reporter
from schemas.receipts import audit_record
from topics.catalog import AUDIT, EVENTS

Outcome = Literal["found_alive", "found_deceased", "closed_other"]
OUTCOMES: tuple[Outcome, ...] = ("found_alive", "found_deceased", "closed_other")

#: uuid5 namespace of the resolutions published by the console.
RESOLUTION_NAMESPACE = uuid.UUID("6a0f3c52-2b7e-5d1e-9c41-0c95d3a7e210")


def resolution(case: CaseChange, agency: str, officer: str, outcome: Outcome, note: str | None,
               now: dt.datetime) -> CaseResolution:
    """The `case_resolved` event an officer of `agency` gives for `case` at `now`."""
    said = f"结案（值班台）：{officer}"
    return CaseResolution(
        event_id=uuid.uuid5(RESOLUTION_NAMESPACE, f"{case.case_id}|{outcome}"),
        kind="case_resolved", jurisdiction=case.jurisdiction, occurred_at=now, reported_at=now,
        reporter=Reporter(agency=agency, role="police_officer"), case_id=case.case_id, outcome=outcome,
        exercise=case.exercise, description=f"{said}\n{note}" if note else said)


async def publish_resolution(publisher: Publisher, event: CaseResolution, actor: str) -> None:
    """The event on the inbound topic (keyed by its case, as every event of a case), then its audit
    line (ids only). Raises `BrokerUnavailable` when the broker does not take the event."""
    await publisher.publish(EVENTS.name, str(event.case_id).encode(), event.model_dump_json().encode())
    record = audit_record(event.event_id, "published", actor, event.reported_at, agency=actor, detail="console")
    await publisher.publish(AUDIT.name, record.key, record.model_dump_json().encode())
