"""A second police release and a withdrawn consent, for a case already broadcasting.

A copy of a release is dropped; a new release is an Update with its public details (never a
second Alert); a release without the guardian's consent for a released case withdraws it: a
Cancel to every earlier recipient and nothing served any more; a later release with consent
alerts again.
"""

from __future__ import annotations

import datetime as dt
import uuid
import xml.etree.ElementTree as ET

from schemas.broadcast import CaseBroadcast
from schemas.events import Event
from services.broadcast import feed
from services.broadcast.cap import CAP_NS, validate
from services.broadcast.handling import Outcome, next_due, on_event, on_tick
from services.broadcast.settings import BroadcastConfig

from .broadcast_events import T0, assert_public, release, report, resolved

H = dt.timedelta(hours=1)
NS = {"cap": CAP_NS}
ALL = ("media", "cyberspace", "outdoor_screens")


def _step(config: BroadcastConfig, state: CaseBroadcast | None, event: Event, now: dt.datetime) -> tuple[
        CaseBroadcast | None, Outcome]:
    """One decision, its outbox flushed (as the worker does before the next one)."""
    out = on_event(state, event, config, now)
    if out.state is not None:
        state = out.state.model_copy(update={"pending": ()})
    return state, out


def _broadcasting(config: BroadcastConfig) -> CaseBroadcast:
    """A case alerted at T0 + 10 min and grown once (an Alert and an Update on every channel)."""
    case = uuid.uuid4()
    state, _ = _step(config, None, report(case), T0)
    state, _ = _step(config, state, release(case), T0 + dt.timedelta(minutes=10))
    assert state is not None
    grown = on_tick(state, config, T0 + H).state
    assert grown is not None
    return grown.model_copy(update={"pending": ()})


def _cap(xml: str | None, path: str) -> list[str]:
    assert xml is not None
    return [e.text or "" for e in ET.fromstring(xml).findall(path, NS)]


def test_a_new_release_for_an_active_broadcast_is_an_update_with_its_details(config: BroadcastConfig) -> None:
    state = _broadcasting(config)
    earlier = state.messages
    second = release(state.case_id, agency="police.local_station", contact="029-8888-1234")
    now = T0 + H + dt.timedelta(minutes=5)
    state2, out = _step(config, state, second, now)
    update, = out.messages
    assert update.msg_type == "Update" and update.channels == ALL and update.status == "Actual"
    assert update.radius_km == earlier[-1].radius_km  # the circle in force, not a new one
    assert update.expires == now.replace(microsecond=0) + config.expires_after  # renewed
    validate(update.xml or "")
    assert _cap(update.xml, "cap:info/cap:contact") == ["029-8888-1234"]
    assert _cap(update.xml, "cap:references") == [" ".join(m.reference for m in earlier)]
    assert "Updated by the police" in _cap(update.xml, "cap:note")[0]
    assert_public(update.xml or "")
    assert state2 is not None and state2.active and len(state2.messages) == 3
    assert state2.release is not None and state2.release.public_contact == "029-8888-1234"
    assert [m.identifier for m in feed.served([state2], config, now)] == [update.identifier]
    # The schedule goes on from there, referencing the update too.
    grown = on_tick(state2, config, T0 + 2 * H).messages[0]
    assert grown.xml is not None and all(m.reference in grown.xml for m in state2.messages)
    assert "029-8888-1234" in grown.xml


def test_a_copy_of_a_release_is_dropped_whenever_it_arrives(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    first, second = release(case), release(case, contact="029-8888-1234")
    state, _ = _step(config, None, report(case), T0)
    for e in (first, second):
        state, _ = _step(config, state, e, T0 + H / 2)
    for copy in (first, second):
        assert on_event(state, copy, config, T0 + H / 2) == Outcome()
    assert state is not None and [m.msg_type for m in state.messages] == ["Alert", "Update"]


def test_a_drill_release_never_changes_a_real_broadcast(config: BroadcastConfig) -> None:
    state = _broadcasting(config)
    out = on_event(state, release(state.case_id, exercise=True), config, T0 + H)
    assert [r.reason for r in out.refusals] == ["exercise_mismatch"] and out.state is None and out.messages == ()


def test_withdrawn_consent_cancels_everywhere_and_nothing_is_served(config: BroadcastConfig) -> None:
    state = _broadcasting(config)
    earlier = state.messages
    withdrawal = release(state.case_id, consent=False)
    now = T0 + H + dt.timedelta(minutes=20)
    assert feed.served([state], config, now)
    withdrawn, out = _step(config, state, withdrawal, now)
    cancel, = out.messages
    assert out.withdrawn == "guardian_consent_withdrawn" and out.refusals == ()
    assert cancel.msg_type == "Cancel" and cancel.channels == ALL
    validate(cancel.xml or "")
    assert _cap(cancel.xml, "cap:references") == [" ".join(m.reference for m in earlier)]
    # Not "all clear": the child is still missing, only the public release ends.
    assert _cap(cancel.xml, "cap:info/cap:responseType") == ["None"]
    assert_public(cancel.xml or "")
    assert "李小红" not in (cancel.xml or "")
    assert withdrawn is not None and not withdrawn.active and not withdrawn.closed and withdrawn.release is None
    assert all(m.xml is None and m.headline is None for m in withdrawn.messages[:-1])
    assert feed.served([withdrawn], config, now) == []
    assert all(feed.document([withdrawn], m.identifier, config, now) is None for m in withdrawn.messages)
    # No more updates; a copy of the withdrawal, or another one, changes nothing public.
    assert on_tick(withdrawn, config, T0 + 5 * H) == Outcome() and next_due(withdrawn, config) is None
    assert on_event(withdrawn, withdrawal, config, now) == Outcome()
    again = on_event(withdrawn, release(state.case_id, consent=False), config, now)
    assert again.messages == () and again.refusals == () and again.withdrawn is None
    # The child found later: the case closes, with no second Cancel.
    closed, out = _step(config, withdrawn, resolved(state.case_id), T0 + 6 * H)
    assert out.messages == () and closed is not None and closed.closed and closed.child is None


def test_a_release_with_renewed_consent_alerts_again(config: BroadcastConfig) -> None:
    state = _broadcasting(config)
    withdrawn, _ = _step(config, state, release(state.case_id, consent=False), T0 + 2 * H + H / 2)
    assert withdrawn is not None
    again, out = _step(config, withdrawn, release(state.case_id, contact="029-7777-0000"), T0 + 3 * H + H / 2)
    alert, = out.messages
    assert alert.msg_type == "Alert" and alert.radius_km == 500 and alert.channels == ALL
    assert alert.identifier not in {m.identifier for m in withdrawn.messages}
    assert _cap(alert.xml, "cap:references") == []
    assert again is not None and again.active and again.alert_messages == (alert,)
    assert [m.identifier for m in feed.served([again], config, T0 + 4 * H)] == [alert.identifier]
    # The resolution's Cancel references the new alert only, on the channels that have it.
    closed, out = _step(config, again, resolved(state.case_id), T0 + 5 * H)
    cancel, = out.messages
    assert _cap(cancel.xml, "cap:references") == [alert.reference]
    assert _cap(cancel.xml, "cap:info/cap:responseType") == ["AllClear"]
    assert closed is not None and closed.closed and not closed.active


def test_a_withdrawal_before_the_alert_drops_the_pending_release(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    state, _ = _step(config, None, release(case), T0)
    state, out = _step(config, state, release(case, consent=False), T0)
    assert out.withdrawn == "guardian_consent_withdrawn" and out.messages == ()
    state, out = _step(config, state, report(case), T0)
    assert out.messages == () and state is not None and not state.active


def test_only_police_withdraw_and_nothing_after_the_case_closed(config: BroadcastConfig) -> None:
    state = _broadcasting(config)
    by_guardian = on_event(state, release(state.case_id, agency=None, consent=False), config, T0 + H)
    assert [r.reason for r in by_guardian.refusals] == ["not_police"] and by_guardian.messages == ()
    closed, _ = _step(config, state, resolved(state.case_id), T0 + 2 * H)
    late = on_event(closed, release(state.case_id, consent=False), config, T0 + 3 * H)
    assert [r.reason for r in late.refusals] == ["case_closed"] and late.withdrawn is None
