"""The CAP feed serves only active alerts; after a Cancel nothing about the child is served."""

from __future__ import annotations

import datetime as dt
import uuid
import xml.etree.ElementTree as ET

from fastapi.testclient import TestClient

from schemas.broadcast import CaseBroadcast
from services.broadcast import feed
from services.broadcast.app import make_http_app
from services.broadcast.handling import on_event, on_tick
from services.broadcast.settings import BroadcastConfig

from .broadcast_events import T0, release, report, resolved

ATOM = {"a": feed.ATOM_NS}


def _active(config: BroadcastConfig, *, exercise: bool = False) -> CaseBroadcast:
    case, state = uuid.uuid4(), None
    for e in (report(case, exercise=exercise), release(case)):
        state = on_event(state, e, config, T0).state or state
    assert state is not None
    return state.model_copy(update={"pending": ()})


def test_the_feed_lists_the_current_message_of_each_active_alert(config: BroadcastConfig) -> None:
    one = _active(config)
    grown = on_tick(one, config, T0 + dt.timedelta(hours=1)).state
    assert grown is not None
    two = _active(config)
    served = feed.served([grown, two], config, T0 + dt.timedelta(hours=1))
    assert {m.identifier for m in served} == {grown.messages[-1].identifier, two.messages[0].identifier}
    body = feed.render(served, base_url="http://feed.test/", title="t", now=T0)
    root = ET.fromstring(body)
    links = [e.get("href") for e in root.findall("a:entry/a:link", ATOM)]
    assert f"http://feed.test/cap/{grown.messages[-1].identifier}.xml" in links
    assert all(e.get("type") == "application/cap+xml" for e in root.findall("a:entry/a:link", ATOM))
    assert root.find("a:updated", ATOM) is not None and root.find("a:id", ATOM) is not None


def test_expired_and_drill_alerts_are_not_served(config: BroadcastConfig) -> None:
    live, drill = _active(config), _active(config, exercise=True)
    assert [m.identifier for m in feed.served([live, drill], config, T0)] == [live.messages[0].identifier]
    assert feed.served([live], config, T0 + config.expires_after) == []
    opted_in = config.model_copy(update={"feed": config.feed.model_copy(update={"accepts_exercises": True})})
    assert len(feed.served([live, drill], opted_in, T0)) == 2


def test_http_feed_and_documents_disappear_after_cancel(config: BroadcastConfig) -> None:
    state = _active(config)
    cases = {state.case_id: state}
    client = TestClient(make_http_app(lambda: cases.values(), config, clock=lambda: T0 + dt.timedelta(minutes=1)))
    identifier = state.messages[0].identifier

    atom = client.get("/feed/cap.atom")
    assert atom.status_code == 200 and atom.headers["content-type"].startswith("application/atom+xml")
    assert identifier in atom.text and "李小红" in atom.text
    doc = client.get(f"/cap/{identifier}.xml")
    assert doc.status_code == 200 and doc.headers["content-type"].startswith("application/cap+xml")
    assert client.get(f"/cap/{uuid.uuid4()}.xml").status_code == 404

    closed = on_event(state, resolved(state.case_id), config, T0 + dt.timedelta(minutes=1)).state
    assert closed is not None
    cases[state.case_id] = closed
    atom = client.get("/feed/cap.atom")
    assert identifier not in atom.text and "李小红" not in atom.text
    assert ET.fromstring(atom.content).findall("a:entry", ATOM) == []
    assert client.get(f"/cap/{identifier}.xml").status_code == 404
    assert client.get(f"/cap/{closed.messages[-1].identifier}.xml").status_code == 404
