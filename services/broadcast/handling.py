"""The broadcast decisions, pure: (case state, event or clock) → new state, CAP messages, refusals.

The agents only decode, call these, and write what they return. Nothing here touches Kafka or
the clock: `now` is passed in, so tests can drive the radius schedule step by step.

Releases, all from police (anyone else is refused), for one case:
- the first with the guardian's consent: the Alert (once the report's public data is there);
- a copy of a release already applied (same event_id): dropped;
- a new one with consent while the alert is active: an Update with its public details (the
  contact) at the current circle, renewing `expires`, to every channel that has the alert; never
  a second Alert;
- one with `guardian_consent: false` while the alert is active: consent withdrawn, a Cancel to
  every earlier recipient, the feed stops serving the child (a release not yet broadcast is simply
  dropped); a later release with consent starts a new Alert;
- any after the case is resolved: refused (`case_closed`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace

from rules.catalog import POLICE, is_police
from schemas.broadcast import (
    BroadcastRefusal,
    CapMessage,
    CaseBroadcast,
    RefusalReason,
    Release,
    WithdrawalReason,
)
from schemas.cases import event_case
from schemas.events import BroadcastRelease, CaseResolution, Event, MissingChildReport
from services.broadcast import radius
from services.broadcast.cap import CapInvalidError, Draft, build, identifier_for
from services.broadcast.public_fields import public_child
from services.broadcast.settings import BroadcastConfig


@dataclass(frozen=True)
class Outcome:
    """What one decision asks the edges to do.

    `state` is the case's new record (None: unchanged). `messages` are new CAP messages, already
    in `state.messages` and listed in `state.pending` (the outbox) so a crash between recording
    and publishing them re-sends the very same bytes on restart. `withdrawn` says why a broadcast
    (or a release not yet broadcast) was withdrawn, for the metrics.
    """

    state: CaseBroadcast | None = None
    messages: tuple[CapMessage, ...] = ()
    refusals: tuple[BroadcastRefusal, ...] = ()
    withdrawn: WithdrawalReason | None = None


NOTHING = Outcome()


def _refuse(event: Event, reason: RefusalReason, detail: str, now: dt.datetime,
            event_id: uuid.UUID | None = None) -> BroadcastRefusal:
    return BroadcastRefusal(
        event_id=event_id or event.event_id, case_id=event_case(event), kind=event.kind, reason=reason,
        detail=detail, reporter_agency=event.reporter.agency, exercise=event.exercise, refused_at=now,
    )


def on_event(state: CaseBroadcast | None, event: Event, config: BroadcastConfig, now: dt.datetime) -> Outcome:
    """Decide what one inbound event does to its case's broadcast. Replaying an event is harmless."""
    case_id = event_case(event)
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
        # The agency code (validated) or "the public": the reporter's role is free text.
        who = event.reporter.agency or "the public"
        return Outcome(refusals=(_refuse(
            event, "not_police",
            f"only a police agency may release a missing-child broadcast (团圆); published by {who}", now),))
    applied = (*current.releases, *((current.release.event_id,) if current.release else ()))
    if event.event_id in applied:
        return NOTHING  # a copy of a release already applied (records older than `releases` have `release`)
    if current.closed:
        return Outcome(refusals=(_refuse(
            event, "case_closed", "the case is already resolved: nothing is broadcast for it", now),))
    if not event.guardian_consent:
        return _withdraw(current, event, config, now)
    if current.active and event.exercise and current.alert_messages[0].status == "Actual":
        return Outcome(refusals=(_refuse(
            event, "exercise_mismatch", "a drill release cannot change a real broadcast (exercise is true)", now),))
    seen = current.model_copy(update={"releases": (*current.releases, event.event_id)})
    release = Release(event_id=event.event_id, agency=event.reporter.agency or POLICE,
                      public_contact=event.public_contact,
                      exercise=event.exercise or (current.active and current.exercise))
    if current.active:
        return _rerelease(seen.model_copy(update={"release": release}), event, config, now)
    return _maybe_alert(seen.model_copy(update={"release": release}), event, config, now)


def _rerelease(case: CaseBroadcast, event: BroadcastRelease, config: BroadcastConfig,
               now: dt.datetime) -> Outcome:
    """A new police release while the alert is active: an Update carrying the release's public
    details at the current circle (a renewed `expires`), to every channel that has the alert."""
    assert case.child is not None and case.release is not None
    stage = max(case.stage, radius.stage_at(config.radius_schedule, case.child.last_seen_at, now))
    alert = case.alert_messages
    draft = Draft(
        msg_type="Update", status=alert[0].status, identifier=identifier_for(case.case_id, len(case.messages)),
        sent=now, channels=case.recipients, references=tuple(m.reference for m in alert),
        child=case.child, contact=case.release.public_contact,
        radius_km=radius.radius_km(config.radius_schedule, stage),
        note="公安机关更新了寻人信息 / Updated by the police.",
    )
    return _send(case, draft, config, event, stage=stage, now=now)


def _withdraw(current: CaseBroadcast, event: BroadcastRelease, config: BroadcastConfig,
              now: dt.datetime) -> Outcome:
    """A police release without consent. For a released case the guardian withdrew consent: a
    Cancel to every channel that has the alert, and nothing about the child served any more (the
    public data stays in the record only so that a release with renewed consent can alert again).
    With nothing released it is a release without consent: refused."""
    reason: WithdrawalReason = "guardian_consent_withdrawn"
    seen = current.model_copy(update={"releases": (*current.releases, event.event_id), "release": None})
    if current.active:
        scrubbed = tuple(m.model_copy(update={"xml": None, "headline": None}) for m in current.messages)
        alert = current.alert_messages
        draft = Draft(
            msg_type="Cancel", status=alert[0].status,
            identifier=identifier_for(current.case_id, len(current.messages)), sent=now,
            channels=current.recipients, references=tuple(m.reference for m in alert), all_clear=False,
        )
        outcome = _send(seen.model_copy(update={"messages": scrubbed, "pending": ()}), draft, config, event,
                        stage=current.stage, now=now)
        if not outcome.messages:
            return Outcome(refusals=outcome.refusals)  # not withdrawn: the record is unchanged
        return replace(outcome, withdrawn=reason)
    if current.release is not None:
        return Outcome(state=seen, withdrawn=reason)  # released, not yet broadcast: nothing will be
    if current.messages:
        return Outcome(state=seen)  # already withdrawn: nothing is public
    return Outcome(refusals=(_refuse(
        event, "no_guardian_consent",
        "the guardian's consent is required before a public release (guardian_consent is false)", now),))


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
        identifier=identifier_for(case.case_id, len(case.messages)), sent=now,
        channels=config.channels_for(case.exercise),
        child=child, contact=release.public_contact, radius_km=radius.radius_km(config.radius_schedule, stage),
    )
    return _send(case, draft, config, event, stage=stage, now=now)


def _send(case: CaseBroadcast, draft: Draft, config: BroadcastConfig, event: Event | None, *,
          stage: int, now: dt.datetime) -> Outcome:
    try:
        message = build(draft, config)
    except CapInvalidError:
        # Never published. A clock-driven Update has no sender to answer: the state is unchanged, so
        # the next tick tries again; an event-driven message is refused to the event's sender. The
        # schema's own message is not repeated: it quotes the values it refused (the child's data).
        if event is None:
            return NOTHING
        return Outcome(state=case, refusals=(_refuse(
            event, "invalid_cap", "the CAP message failed the CAP 1.2 schema (a public field is not "
                                  "acceptable to CAP: check the contact, the photo URL and the names)", now),))
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
    alert = case.alert_messages
    draft = Draft(
        msg_type="Update", status=alert[0].status,
        identifier=identifier_for(case.case_id, len(case.messages)), sent=now,
        channels=case.recipients, references=tuple(m.reference for m in alert),
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
        # The agency code (validated) or "the public": the reporter's role is free text.
        who = event.reporter.agency or "the public"
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
    if not current.active:
        return Outcome(state=closed)  # nothing public (never released, or withdrawn and cancelled)
    alert = current.alert_messages
    draft = Draft(
        msg_type="Cancel", status=alert[0].status,
        identifier=identifier_for(current.case_id, len(current.messages)), sent=now,
        channels=current.recipients, references=tuple(m.reference for m in alert),
    )
    return _send(closed, draft, config, event, stage=current.stage, now=now)
