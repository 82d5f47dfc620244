"""What a person reads of the bus's times and receipts: a time in the jurisdiction's own zone (from
the catalog), a plan by its title (from the rule packs), a receipt as the reporter reads it.

Shared by the console's pages and the terminal's `referral-bus receipt`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from functools import cache
from typing import Any

from rules.catalog import catalog
from rules.engine import load_rulebook
from schemas.references import short_ref

Json = dict[str, Any]


def local_time(t: dt.datetime | None, jurisdiction: str) -> Json | None:
    """A time as the jurisdiction reads it: `2026-11-20 08:00:00` in its zone (from the catalog),
    with the instant in ms for countdowns. Never UTC, never microseconds."""
    if t is None:
        return None
    j = catalog().jurisdictions.get(jurisdiction)
    zone = j.zone if j is not None else dt.UTC
    local = t.astimezone(zone)
    return {"text": local.strftime("%Y-%m-%d %H:%M:%S"), "ms": int(t.timestamp() * 1000),
            "zone": str(zone)}


@cache
def plan_titles() -> Mapping[str, str]:
    """Plan text file (a citation's `file`) -> the plan's title, from the rule packs."""
    return {p.seed: p.title for p in load_rulebook().packs.values() if p.seed and p.title}


def plan_title(file: str) -> str | None:
    return plan_titles().get(file)


def receipt_view(status: dict[str, Any]) -> Json:
    """The intake's event status as the reporter reads it: each agency told, its role, the plan's
    title and the article, the deadlines in the jurisdiction's local time; or the refusal."""
    receipt = status.get("receipt") or {}
    jurisdiction = receipt.get("jurisdiction") or ""
    routed = []
    for r in receipt.get("routed_to") or ():
        routed.append({
            "agency": r.get("agency"), "role": r.get("role"), "clause": r.get("clause"),
            "plan": plan_title(r.get("file") or "") or _jurisdiction_title(jurisdiction),
            "urgency": r.get("urgency"),
            "ack_by": local_time(_time(r.get("ack_by")), jurisdiction),
            "due_by": local_time(_time(r.get("due_by")), jurisdiction),
        })
    event_id = str(status.get("event_id", ""))
    ref = None
    if jurisdiction in catalog().jurisdictions:
        try:
            ref = short_ref(jurisdiction, uuid.UUID(event_id))
        except ValueError:
            ref = None
    return {
        "event_id": event_id, "ref": ref, "status": status.get("status"), "jurisdiction": jurisdiction or None,
        "exercise": bool(receipt.get("exercise")),
        "accepted_at": local_time(_time(status.get("accepted_at")), jurisdiction),
        "routed_to": routed,
        "refusal": None if receipt.get("refusal_reason") is None else {
            "reason": receipt.get("refusal_reason"),
            "fields": [{"field": e.get("field"), "reason": e.get("reason")}
                       for e in receipt.get("refusal_errors") or ()],
        },
    }


def _jurisdiction_title(code: str) -> str | None:
    j = catalog().jurisdictions.get(code)
    return j.zh if j is not None else None


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


#: Why an event was refused (the router's and the intake's reason codes), as a reporter reads it.
REFUSALS_ZH = {
    "invalid_json": "报告格式有误（不是有效的 JSON）",
    "invalid_event": "报告内容有误",
    "agency_mismatch": "报告单位与令牌所属机构不一致",
    "kind_not_permitted": "本机构不能上报此类事项",
    "event_id_conflict": "报告编号已被另一份报告使用，请换新编号",
    "too_large": "报告过长",
}
ROLES_ZH = {"lead": "负责", "cooperating": "配合"}


def receipt_lines_zh(view: Json) -> list[str]:
    """The receipt in Chinese, one line per agency told (or the refusal and what to fix)."""
    cat = catalog()
    ref = view.get("ref") or view.get("event_id")
    if view.get("status") == "refused" and view.get("refusal"):
        refusal = view["refusal"]
        lines = [f"回执 {ref}：未能受理 —— {REFUSALS_ZH.get(refusal['reason'], refusal['reason'])}"]
        lines += [f"  请修改 {f['field']}：{f['reason']}" for f in refusal["fields"]]
        return lines
    if view.get("status") != "routed":
        return [f"回执 {ref}：总线已收到，正在分派"]
    drill = "（演练）" if view.get("exercise") else ""
    lines = [f"回执 {ref}{drill}：已通知 {len(view['routed_to'])} 个单位"]
    for r in view["routed_to"]:
        agency = cat.agencies.get(r["agency"])
        parts = [f"  {agency.zh if agency else r['agency']}（{ROLES_ZH.get(r['role'], r['role'])}）",
                 f"依据《{r['plan'] or ''}》{r['clause']}"]
        if r.get("ack_by"):
            parts.append(f"确认时限 {r['ack_by']['text']}")
        if r.get("due_by"):
            parts.append(f"办结时限 {r['due_by']['text']}")
        if r.get("urgency"):
            parts.append(cat.urgency_zh.get(r["urgency"], r["urgency"]))
        lines.append(" · ".join(parts))
    return lines
