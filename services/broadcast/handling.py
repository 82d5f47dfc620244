"""The broadcast decisions, pure: (case state, event or clock) → new state, CAP messages, refusals.

The agents only decode, call these, and write what they return. Nothing here touches Kafka or
the clock: `now` is passed in, so tests can drive the radius schedule step by step.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from referral_bus.rules.catalog import catalog
from referral_bus.schemas.broadcast import (
    BroadcastRefusal,
    CapMessage,
    CaseBroadcast,
    RefusalReason,
    Release,
)
from referral_bus.schemas.events import BroadcastRelease, CaseResolution, Event, MissingChildReport
from referral_bus.services.broadcast import radius
from referral_bus.services.broadcast.cap import CapInvalidError, Draft, build, identifier_for
from referral_bus.services.broadcast.public_fields import public_child
from referral_bus.services.broadcast.settings import BroadcastConfig

POLICE = "police"


@dataclass(frozen=True)
class Outcome:
    """What one decision asks the edges to do.

    `state` is the case's new record (None: unchanged). `messages` are new CAP messages, already
    in `state.messages` and listed in `state.pending` (the outbox) so a crash between recording
    and publishing them re-sends the very same bytes on restart.
    """

    state: CaseBroadcast | None = None
    messages: tuple[CapMessage, ...] = ()
    refusals: tuple[BroadcastRefusal, ...] = ()


NOTHING = Outcome()


def case_id_of(event: Event) -> uuid.UUID | None:
    """The case an event belongs to; a report without case_id opens the case named by its event_id."""
    if isinstance(event, MissingChildReport):
        return event.case_id or event.event_id
    if isinstance(event, BroadcastRelease | CaseResolution):
        return event.case_id
    return None


def is_police(agency: str | None) -> bool:
    """A police agency or one of its units (police.command_center, police.local_station, …)."""
    agencies = catalog().agencies
    while agency is not None:
        if agency == POLICE:
            return True
        found = agencies.get(agency)
        agency = found.parent if found else None
    return False


def _refuse(event: Event, reason: RefusalReason, detail: str, now: dt.datetime,
            event_id: uuid.UUID | None = None) -> BroadcastRefusal:
    return BroadcastRefusal(
        event_id=event_id or event.event_id, case_id=case_id_of(event), kind=event.kind, reason=reason,
        detail=detail, reporter_agency=event.reporter.agency, exercise=event.exercise, refused_at=now,
    )


def on_event(state: CaseBroadcast | None, event: Event, config: BroadcastConfig, now: dt.datetime) -> Outcome:
    """Decide what one inbound event does to its case's broadcast. Replaying an event is harmless."""
    case_id = case_id_of(event)
    if case_id is None:
        return NOTHING
    current = state or CaseBroadcast(case_id=case_id)
    if isinstance(event, MissingChildReport):
        if current.closed or current.active:
            # A report after the alert (or after the case closed) changes nothing already public.
            return NOTHING
        updated = current.model_copy(update={"child": public_child(event), "report_exercise": event.exercise})
        return _maybe_alert(updated, event, config, now)
    if isinstance(event, BroadcastRelease):
        return _on_release(current, event, config, now)
    if isinstance(event, CaseResolution):
        return _on_resolution(current, event, config, now)
    return NOTHING


def _on_release(current: CaseBroadcast, event: BroadcastRelease, config: BroadcastConfig,
                now: dt.datetime) -> Outcome:
    if not is_police(event.reporter.agency):
        who = event.reporter.agency or f"the public ({event.reporter.role})"
        return Outcome(refusals=(_refuse(
            event, "not_police",
            f"only a police agency may release a missing-child broadcast (团圆); published by {who}", now),))
    if not event.guardian_consent:
        return Outcome(refusals=(_refuse(
            event, "no_guardian_consent",
            "the guardian's consent is required before a public release (guardian_consent is false)", now),))
    if current.closed:
        return Outcome(refusals=(_refuse(
            event, "case_closed", "the case is already resolved: nothing is broadcast for it", now),))
    if current.active or current.release is not None:
        return NOTHING  # already released (a copy, or a second officer): one alert per case
    release = Release(event_id=event.event_id, agency=event.reporter.agency or POLICE,
                      public_contact=event.public_contact, exercise=event.exercise)
    return _maybe_alert(current.model_copy(update={"release": release}), event, config, now)


def _maybe_alert(case: CaseBroadcast, event: Event, config: BroadcastConfig, now: dt.datetime) -> Outcome:
    """Send the Alert once both the report (public data) and a valid release are there."""
    child, release = case.child, case.release
    if child is None or release is None:
        return Outcome(state=case)  # waiting for the other half; kept durably
    if child.lat is None or child.lon is None:
        return Outcome(state=case, refusals=(_refuse(
            event, "no_last_seen_coordinates",
            "the report has no lat/lon for the last-seen location: no broadcast circle can be drawn",
            now, event_id=release.event_id),))
    stage = radius.stage_at(config.radius_schedule, child.last_seen_at, now)
    draft = Draft(
        msg_type="Alert", status="Exercise" if case.exercise else "Actual",
        identifier=identifier_for(case.case_id, 0), sent=now, channels=config.channels_for(case.exercise),
        child=child, contact=release.public_contact, radius_km=radius.radius_km(config.radius_schedule, stage),
    )
    return _send(case, draft, config, event, stage=stage, now=now)


def _send(case: CaseBroadcast, draft: Draft, config: BroadcastConfig, event: Event | None, *,
          stage: int, now: dt.datetime) -> Outcome:
    try:
        message = build(draft, config)
    except CapInvalidError as exc:
        # Never published. A clock-driven Update has no sender to answer: the state is unchanged, so
        # the next tick tries again; an event-driven message is refused to the event's sender.
        if event is None:
            return NOTHING
        return Outcome(state=case, refusals=(_refuse(
            event, "invalid_cap", f"the CAP message failed the CAP 1.2 schema: {exc}", now),))
    updated = case.model_copy(update={
        "stage": stage, "messages": (*case.messages, message), "pending": (*case.pending, message.identifier)})
    return Outcome(state=updated, messages=(message,))


def on_tick(case: CaseBroadcast, config: BroadcastConfig, now: dt.datetime) -> Outcome:
    """Widen the circle when the schedule says so: one Update to the current stage (steps missed
    while the service was down collapse into one)."""
    if not case.active or case.child is None or case.release is None:
        return NOTHING
    stage = radius.stage_at(config.radius_schedule, case.child.last_seen_at, now)
    if stage <= case.stage:
        return NOTHING
    draft = Draft(
        msg_type="Update", status=case.messages[0].status,
        identifier=identifier_for(case.case_id, len(case.messages)), sent=now,
        channels=case.recipients, references=tuple(m.reference for m in case.messages),
        child=case.child, contact=case.release.public_contact,
        radius_km=radius.radius_km(config.radius_schedule, stage),
    )
    return _send(case, draft, config, None, stage=stage, now=now)


def next_due(case: CaseBroadcast, config: BroadcastConfig) -> dt.datetime | None:
    """When `on_tick` next has something to do for this case."""
    if not case.active or case.child is None:
        return None
    return radius.next_change_at(config.radius_schedule, case.child.last_seen_at, case.stage)


def _on_resolution(current: CaseBroadcast, event: CaseResolution, config: BroadcastConfig,
                   now: dt.datetime) -> Outcome:
    if not is_police(event.reporter.agency):
        who = event.reporter.agency or f"the public ({event.reporter.role})"
        return Outcome(refusals=(_refuse(
            event, "cancel_not_police", f"only the police resolve a case and cancel its broadcast; published by {who}",
            now),))
    if current.closed:
        return NOTHING
    # Forget the child: the earlier messages keep only what references need (ids and times).
    scrubbed = tuple(m.model_copy(update={"xml": None, "headline": None}) for m in current.messages)
    closed = current.model_copy(update={
        "child": None, "release": None, "closed": True, "closed_at": now, "messages": scrubbed,
        # The outbox is always flushed before the next decision, so nothing pending is dropped here.
        "pending": ()})
    if not current.messages:
        return Outcome(state=closed)
    draft = Draft(
        msg_type="Cancel", status=current.messages[0].status,
        identifier=identifier_for(current.case_id, len(current.messages)), sent=now,
        channels=current.recipients, references=tuple(m.reference for m in current.messages),
    )
    return _send(closed, draft, config, event, stage=current.stage, now=now)
