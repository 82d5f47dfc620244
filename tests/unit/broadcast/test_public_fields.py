"""No personal field beyond the public set reaches any broadcast: a scan of every message."""

from __future__ import annotations

import datetime as dt
import uuid

from schemas.broadcast import CapMessage, PublicChild
from schemas.events import MissingChildReport
from services.broadcast.handling import on_event, on_tick
from services.broadcast.public_fields import public_child
from services.broadcast.settings import BroadcastConfig

from .broadcast_events import SECRETS, T0, assert_public, release, report, resolved


def test_the_projection_is_an_allowlist() -> None:
    assert set(PublicChild.model_fields) == {
        "name", "age", "sex", "distinguishing_features", "photo_url", "last_seen_at", "last_seen_place",
        "lat", "lon"}
    event = report(uuid.uuid4())
    assert isinstance(event, MissingChildReport)
    child = public_child(event)
    dumped = child.model_dump_json()
    assert SECRETS["id_number"] not in dumped and SECRETS["address"] not in dumped
    assert SECRETS["description"] not in dumped


def test_no_message_of_a_whole_alert_life_carries_a_private_field(config: BroadcastConfig) -> None:
    case = uuid.uuid4()
    messages: list[CapMessage] = []
    state = None
    for e in (report(case), release(case)):
        out = on_event(state, e, config, T0)
        state, messages = out.state or state, messages + list(out.messages)
    for hours in (1, 2, 3):
        assert state is not None
        out = on_tick(state, config, T0 + dt.timedelta(hours=hours))
        state, messages = out.state or state, messages + list(out.messages)
    out = on_event(state, resolved(case), config, T0 + dt.timedelta(hours=4))
    messages += list(out.messages)
    assert [m.msg_type for m in messages] == ["Alert", "Update", "Update", "Update", "Cancel"]
    for m in messages:
        assert m.xml is not None
        assert_public(m.xml)
