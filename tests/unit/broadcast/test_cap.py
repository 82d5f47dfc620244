"""CAP 1.2 messages: valid against the OASIS XSD, with expires, references and the circle."""

from __future__ import annotations

import datetime as dt
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from schemas.events import MissingChildReport
from services.broadcast.cap import (
    CAP_NS,
    CapInvalidError,
    Draft,
    build,
    cap_time,
    identifier_for,
    validate,
)
from services.broadcast.public_fields import public_child
from services.broadcast.settings import BroadcastConfig

from .broadcast_events import T0, report

NS = {"cap": CAP_NS}
CASE = uuid.UUID("7d1c0c52-0000-4000-8000-000000000001")


def _child() -> MissingChildReport:
    event = report(CASE)
    assert isinstance(event, MissingChildReport)
    return event


def _alert(config: BroadcastConfig, **kw: Any) -> Draft:
    options: dict[str, Any] = {
        "msg_type": "Alert", "status": "Actual", "identifier": identifier_for(CASE, 0), "sent": T0,
        "channels": ("media",), "child": public_child(_child()), "contact": "029-110-0000", "radius_km": 100}
    options.update(kw)
    return Draft(**options)


def _text(xml: str, path: str) -> list[str]:
    return [e.text or "" for e in ET.fromstring(xml).findall(path, NS)]


def test_alert_is_valid_cap_with_the_child_abduction_code_and_a_circle(config: BroadcastConfig) -> None:
    m = build(_alert(config), config)
    assert m.xml is not None
    validate(m.xml)
    assert _text(m.xml, "cap:msgType") == ["Alert"] and _text(m.xml, "cap:status") == ["Actual"]
    assert _text(m.xml, "cap:scope") == ["Public"]
    assert _text(m.xml, "cap:info/cap:eventCode/cap:valueName") == ["SAME"]
    assert _text(m.xml, "cap:info/cap:eventCode/cap:value") == ["CAE"]
    # The centre is rounded to 2 decimals (≈1 km): the exact last-seen point is not published.
    assert _text(m.xml, "cap:info/cap:area/cap:circle") == ["34.26,108.94 100"]
    assert _text(m.xml, "cap:info/cap:contact") == ["029-110-0000"]
    assert _text(m.xml, "cap:references") == []


def test_times_carry_an_offset_and_every_message_expires(config: BroadcastConfig) -> None:
    m = build(_alert(config, sent=T0 + dt.timedelta(microseconds=123)), config)
    assert m.xml is not None
    assert m.sent == "2026-11-20T14:00:00+08:00" == cap_time(T0, config.tz)
    assert _text(m.xml, "cap:info/cap:expires") == ["2026-11-21T14:00:00+08:00"]
    assert m.expires == T0 + config.expires_after


def test_update_references_every_earlier_message(config: BroadcastConfig) -> None:
    alert = build(_alert(config), config)
    update = build(_alert(config, msg_type="Update", identifier=identifier_for(CASE, 1), radius_km=200,
                          references=(alert.reference,)), config)
    assert update.xml is not None
    validate(update.xml)
    assert _text(update.xml, "cap:references") == [f"{config.sender},{alert.identifier},{alert.sent}"]
    assert _text(update.xml, "cap:info/cap:area/cap:circle") == ["34.26,108.94 200"]


def test_cancel_says_nothing_about_the_child(config: BroadcastConfig) -> None:
    alert = build(_alert(config), config)
    cancel = build(Draft(msg_type="Cancel", status="Actual", identifier=identifier_for(CASE, 1), sent=T0,
                         channels=("media",), references=(alert.reference,)), config)
    assert cancel.xml is not None
    validate(cancel.xml)
    assert "李小红" not in cancel.xml and "钟楼" not in cancel.xml and "029-110" not in cancel.xml
    assert _text(cancel.xml, "cap:info/cap:area") == []
    assert _text(cancel.xml, "cap:info/cap:responseType") == ["AllClear"]
    assert _text(cancel.xml, "cap:info/cap:expires")


def test_exercise_status_and_note(config: BroadcastConfig) -> None:
    m = build(_alert(config, status="Exercise"), config)
    assert m.xml is not None and _text(m.xml, "cap:status") == ["Exercise"]
    assert "Exercise" in _text(m.xml, "cap:note")[0]


def test_identifiers_are_deterministic_and_opaque() -> None:
    assert identifier_for(CASE, 0) == identifier_for(CASE, 0) != identifier_for(CASE, 1)
    assert str(CASE) not in identifier_for(CASE, 0)


def test_control_characters_cannot_break_a_message(config: BroadcastConfig) -> None:
    child = public_child(_child()).model_copy(update={"distinguishing_features": "红色\x07外套\x00"})
    m = build(_alert(config, child=child), config)
    assert m.xml is not None and "红色外套" in m.xml


def test_the_validator_rejects_invalid_cap() -> None:
    with pytest.raises(CapInvalidError, match="not well-formed"):
        validate("<alert")
    bad = f'<alert xmlns="{CAP_NS}"><identifier>x</identifier><sender>s</sender></alert>'
    with pytest.raises(CapInvalidError, match="sent"):
        validate(bad)
    no_offset = (f'<alert xmlns="{CAP_NS}"><identifier>x</identifier><sender>s</sender>'
                 "<sent>2026-11-20T06:00:00Z</sent><status>Actual</status><msgType>Alert</msgType>"
                 "<scope>Public</scope></alert>")
    with pytest.raises(CapInvalidError):
        validate(no_offset)
