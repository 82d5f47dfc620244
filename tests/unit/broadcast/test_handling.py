"""Broadcast decisions: who may release, consent, the growing circle, drills, cancel."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from schemas.broadcast import CaseBroadcast
from schemas.events import Event
from services.broadcast.handling import Outcome, next_due, on_event, on_tick
from services.broadcast.settings import BroadcastConfig

from .broadcast_events import T0, release, report, resolved

H = dt.timedelta(hours=1)


def _run(config: BroadcastConfig, events: list[Event], now: dt.datetime = T0,
         state: CaseBroadcast | None = None) -> tuple[CaseBroadcast | None, list[Outcome]]:
    """Feed events in order, as the worker does (outboxes flushed between decisions)."""
    outcomes = []
    for e in events:
        out = on_event(state, e, config, now)
        outcomes.append(out)
        if out.state is not None:
            state = out.state.model_copy(update={"pending": ()})
    return state, outcomes


@pytest.mark.parametrize(("agency", "consent", "reason", "detail"), [
    ("civil_affairs", True, "not_police", "only a police agency may release"),
    (None, True, "not_police", "published by the public"),
    ("police", False, "no_guardian_consent", "the guardian's consent is required"),
])
def test_a_release_is_refused_with_a_clear_reason(config: BroadcastConfig, agency: str | None, consent: bool,
                                                 reason: str, detail: str) -> None:
    case = uuid.uuid4()
    bad = release(case, agency=agency, consent=consent)
    state, outcomes = _run(config, [report(case), bad])
    refusal, = outcomes[1].refusals
    assert (refusal.reason, refusal.event_id, refusal.case_id) == (reason, bad.event_id, case)
    assert detail in refusal.detail
    assert bad.reporter.role not in refusal.detail  # free text the sender wrote: never repeated
    assert outcomes[1].messages == () and outcomes[1].state is None
    assert state is not None and not state.active


def test_a_police_release_with_consent_sends_one_alert_to_every_channel(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    rel = release(case)
    state, outcomes = _run(config, [report(case), rel, rel, release(case)], now=T0 + 10 * dt.timedelta(minutes=1))
    alert, = outcomes[1].messages
    assert alert.msg_type == "Alert" and alert.status == "Actual" and alert.radius_km == 100
    assert alert.channels == ("media", "cyberspace", "outdoor_screens")
    assert outcomes[1].state is not None and outcomes[1].state.pending == (alert.identifier,)
    assert outcomes[2] == Outcome()  # a copy of the release: dropped
    # A second release: an Update of the same alert, never a second Alert (test_releases.py).
    assert [m.msg_type for m in outcomes[3].messages] == ["Update"]
    assert state is not None and state.active


def test_a_release_before_the_report_waits_for_it(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    _, outcomes = _run(config, [release(case), report(case)])
    assert outcomes[0].messages == () and outcomes[0].state is not None
    assert [m.msg_type for m in outcomes[1].messages] == ["Alert"]


def test_the_first_circle_matches_the_time_already_elapsed(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    _, outcomes = _run(config, [report(case), release(case)], now=T0 + 2.5 * H)
    assert outcomes[1].messages[0].radius_km == 300


def test_no_coordinates_no_circle(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    rel = release(case)
    _, outcomes = _run(config, [report(case, with_coordinates=False), rel])
    refusal, = outcomes[1].refusals
    assert refusal.reason == "no_last_seen_coordinates" and refusal.event_id == rel.event_id


def test_the_circle_grows_on_schedule_each_growth_an_update(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    state, _ = _run(config, [report(case), release(case)], now=T0 + dt.timedelta(minutes=5))
    assert state is not None
    sent = list(state.messages)
    assert next_due(state, config) == T0 + H
    assert on_tick(state, config, T0 + H - dt.timedelta(seconds=1)) == Outcome()
    for now, km in [(T0 + H, 200), (T0 + 2 * H, 300), (T0 + 3 * H, 500)]:
        out = on_tick(state, config, now)
        update, = out.messages
        assert (update.msg_type, update.radius_km) == ("Update", km)
        assert update.xml is not None
        for earlier in sent:  # every earlier message is referenced
            assert earlier.reference in update.xml
        sent.append(update)
        assert out.state is not None
        state = out.state.model_copy(update={"pending": ()})
    assert next_due(state, config) is None
    assert on_tick(state, config, T0 + 30 * H) == Outcome()


def test_steps_missed_while_down_collapse_into_one_update(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    state, _ = _run(config, [report(case), release(case)])
    assert state is not None
    out = on_tick(state, config, T0 + 5 * H)
    assert [m.radius_km for m in out.messages] == [500]


def test_cancel_reaches_every_recipient_references_all_and_forgets_the_child(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    state, _ = _run(config, [report(case), release(case)])
    assert state is not None
    grown = on_tick(state, config, T0 + H).state
    assert grown is not None
    state, outcomes = _run(config, [resolved(case, at=T0 + 2 * H)], state=grown.model_copy(update={"pending": ()}))
    cancel, = outcomes[0].messages
    assert cancel.msg_type == "Cancel" and cancel.channels == ("media", "cyberspace", "outdoor_screens")
    assert cancel.xml is not None
    assert all(m.reference in cancel.xml for m in grown.messages)
    assert state is not None and state.closed and not state.active
    assert state.child is None and state.release is None
    assert all(m.xml is None and m.headline is None for m in state.messages[:-1])
    assert "李小红" not in state.model_dump_json()
    # After the case is closed: no more updates, a new release is refused, a copy of the resolution is nothing.
    assert on_tick(state, config, T0 + 5 * H) == Outcome()
    assert _run(config, [resolved(case)], state=state)[1][0] == Outcome()
    late = _run(config, [release(case)], state=state)[1][0]
    assert [r.reason for r in late.refusals] == ["case_closed"]
    assert _run(config, [report(case)], state=state)[1][0] == Outcome()


def test_cancel_by_a_non_police_publisher_is_refused(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    state, _ = _run(config, [report(case), release(case)])
    _, outcomes = _run(config, [resolved(case, agency="civil_affairs")], state=state)
    assert [r.reason for r in outcomes[0].refusals] == ["cancel_not_police"]
    assert outcomes[0].messages == ()


def test_resolution_without_a_broadcast_closes_quietly(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    state, outcomes = _run(config, [report(case), resolved(case)])
    assert outcomes[1].messages == () and state is not None and state.closed and state.child is None


@pytest.mark.parametrize("drill_on", ["report", "release"])
def test_drills_are_exercise_and_only_go_to_channels_that_accept_them(config: BroadcastConfig, drill_on: str) -> None:
    case = uuid.uuid4()
    state, outcomes = _run(config, [report(case, exercise=drill_on == "report"),
                                    release(case, exercise=drill_on == "release")])
    alert, = outcomes[1].messages
    assert alert.status == "Exercise" and alert.channels == ("media", "cyberspace")
    assert state is not None
    update, = on_tick(state, config, T0 + H).messages
    assert update.status == "Exercise" and "outdoor_screens" not in update.channels


def test_events_of_other_kinds_are_ignored(config: BroadcastConfig) -> None:
    from schemas.events import parse_event_obj

    other = parse_event_obj({
        "event_id": str(uuid.uuid4()), "kind": "child_of_unknown_origin_found", "jurisdiction": "xian",
        "occurred_at": T0.isoformat(), "reported_at": T0.isoformat(),
        "reporter": {"agency": "police", "role": "police_officer"}})
    assert on_event(None, other, config, T0) == Outcome()


def test_a_message_that_fails_the_cap_schema_is_never_sent(config: BroadcastConfig) -> None:
    broken = config.model_copy(update={"language": "not a language tag"})  # xs:language refuses it
    case = uuid.uuid4()
    state, outcomes = _run(broken, [report(case), release(case)])
    assert outcomes[1].messages == () and [r.reason for r in outcomes[1].refusals] == ["invalid_cap"]
    assert state is not None and not state.active
    good_state, _ = _run(config, [report(case), release(case)])
    assert good_state is not None
    assert on_tick(good_state, broken, T0 + H) == Outcome()
