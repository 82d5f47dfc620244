"""The router's step writes each referral's message on its agency's topic, keyed as the referral
says (`Referral.key`: its case, else its event), from the JSON the engine wrote; and its outcome
and messages are the named tuples their constructors make."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from bus.demo_events import scripted_events
from rules.catalog import catalog
from rules.deadlines import Deadlines
from rules.engine import load_rulebook, route_written
from schemas.events import parse_event
from services.router.handling import Outgoing, Position, Routed, Router, referral_messages, written_referrals
from services.router.outputs import emitters
from topics.catalog import referral_topic_name

HERE = Position("events.inbound", 0, 0)


def _events() -> list[bytes]:
    out = []
    for n, event in enumerate(scripted_events(run=uuid.UUID(int=5))):
        for case_id in (None, str(uuid.UUID(int=n + 1, version=4))):
            for jurisdiction in sorted(catalog().jurisdictions):
                changed = dict(event, jurisdiction=jurisdiction)
                if case_id is not None:
                    changed["case_id"] = case_id
                out.append(json.dumps(changed, ensure_ascii=False).encode())
    return out


def test_referral_messages_are_keyed_and_addressed_as_the_referrals_say() -> None:
    book, deadlines = load_rulebook(), Deadlines.load()
    routed = 0
    for raw in _events():
        event = parse_event(raw)
        written = route_written(event, book, deadlines=deadlines)
        referrals = [w.referral for w in written]
        want = [Outgoing(referral_topic_name(r.agency), r.key, r.model_dump_json().encode()) for r in referrals]
        assert list(referral_messages(written)) == want
        assert list(referral_messages(written_referrals(referrals))) == want
        routed += bool(written)
    assert routed > 20
    assert referral_messages([]) == ()


def test_the_outcome_and_its_messages_are_what_their_constructors_make() -> None:
    deadlines = Deadlines.load()
    at = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    step = Router(load_rulebook(), deadlines, emitters(deadlines))
    for raw in _events()[:40]:
        outcome = step.handle(raw, HERE, now=lambda: at)
        if not isinstance(outcome, Routed):
            continue
        assert type(outcome) is Routed and outcome.reason == "routed"
        assert outcome == Routed(outcome.event, tuple(outcome.written), tuple(outcome.messages))
        assert isinstance(outcome.messages, tuple) and isinstance(outcome.written, tuple)
        for message in outcome.messages:
            assert type(message) is Outgoing
            assert message == Outgoing(message.topic, message.key, message.value)
            assert (isinstance(message.topic, str) and isinstance(message.key, bytes)
                    and isinstance(message.value, bytes))
