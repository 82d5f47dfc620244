"""The CAP feed: an Atom index of active alerts, as public alert aggregators consume it.

Pure: which messages are served (`served`, `document`) and the Atom rendering. Only active
alerts are served: not cancelled, not expired, drills only where the feed accepts them. Once a
case is cancelled nothing about the child is served, not even its CAP documents.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

from schemas.broadcast import CAP_CONTENT_TYPE, CapMessage, CaseBroadcast
from services.broadcast.settings import BroadcastConfig

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_CONTENT_TYPE = "application/atom+xml"


def _visible(case: CaseBroadcast, config: BroadcastConfig, now: dt.datetime) -> bool:
    if not case.active:
        return False
    latest = case.messages[-1]
    if latest.expires <= now:
        return False
    return latest.status == "Actual" or config.feed.accepts_exercises


def served(cases: Iterable[CaseBroadcast], config: BroadcastConfig, now: dt.datetime) -> list[CapMessage]:
    """The current message of every active alert, newest first (one entry per alert)."""
    current = [c.messages[-1] for c in cases if _visible(c, config, now)]
    return sorted(current, key=lambda m: (m.sent, m.identifier), reverse=True)


def document(cases: Iterable[CaseBroadcast], identifier: str, config: BroadcastConfig,
             now: dt.datetime) -> str | None:
    """The CAP XML of `identifier` if it belongs to an active alert (earlier messages included, so
    that an Update's references resolve), else None."""
    for case in cases:
        if not _visible(case, config, now):
            continue
        for m in case.messages:
            if m.identifier == identifier and m.xml is not None:
                return m.xml
    return None


def cap_url(base_url: str, identifier: str) -> str:
    return f"{base_url.rstrip('/')}/cap/{identifier}.xml"


def _sub(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, name, attrs)
    if text is not None:
        el.text = text
    return el


def _atom_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def render(messages: Sequence[CapMessage], *, base_url: str, title: str, now: dt.datetime) -> bytes:
    """Atom 1.0 (RFC 4287): one entry per message, linking to its CAP document."""
    # Atom as the default namespace, declared by hand: ElementTree's default_namespace option
    # refuses the unqualified attributes (rel, href) Atom uses.
    feed = ET.Element("feed", xmlns=ATOM_NS)
    self_url = f"{base_url.rstrip('/')}/feed/cap.atom"
    _sub(feed, "id", self_url)
    _sub(feed, "title", title)
    updated = max((dt.datetime.fromisoformat(m.sent) for m in messages), default=now)
    _sub(feed, "updated", _atom_time(updated))
    _sub(_sub(feed, "author"), "name", messages[0].sender if messages else "referral-bus")
    _sub(feed, "link", rel="self", href=self_url, type=ATOM_CONTENT_TYPE)
    for m in messages:
        entry = _sub(feed, "entry")
        url = cap_url(base_url, m.identifier)
        _sub(entry, "id", url)
        _sub(entry, "title", m.headline or m.identifier)
        _sub(entry, "updated", _atom_time(dt.datetime.fromisoformat(m.sent)))
        _sub(entry, "published", _atom_time(dt.datetime.fromisoformat(m.sent)))
        _sub(entry, "link", rel="alternate", href=url, type=CAP_CONTENT_TYPE)
        summary = f"{m.msg_type}, {m.status}, radius {m.radius_km} km, expires {m.expires.isoformat()}"
        _sub(entry, "summary", summary)
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body
