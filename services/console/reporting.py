"""The reporter's side: the form's choices, publishing through the intake with the reporter's own
agency token, and the receipt told in the reporter's terms (who was told, under which plan and
article, by when; or why it was refused and what to fix).

The console does not publish events itself: the intake is the bus's one door for events (its
checks, its idempotency by `event_id`, its receipts), and the reporter's session holds the token
the intake knows them by. The browser keeps a report on the device until the intake has it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from rules.catalog import catalog
from schemas.references import short_ref
from services.console.board import Json, local_time, plan_title


class FormConfig(BaseModel):
    """`report_form.yaml`: the situations and roles the form offers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: tuple[str, ...]
    roles: tuple[str, ...]

    @model_validator(mode="after")
    def _known(self) -> FormConfig:
        cat = catalog()
        for kind in self.kinds:
            if kind not in cat.event_kinds:
                raise ValueError(f"report form: unknown event kind {kind!r}")
        for role in self.roles:
            if role not in cat.reporter_roles:
                raise ValueError(f"report form: unknown reporter role {role!r}")
        return self

    @classmethod
    def load(cls, path: Path) -> FormConfig:
        try:
            return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise ValueError(f"{path}: {exc}") from exc


class IntakeUnavailable(Exception):
    """The intake did not answer: the browser keeps the report and tries again."""


class IntakeGateway:
    """Forwards a reporter's event and receipt requests to the intake with their token."""

    def __init__(self, url: str, timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s, transport=transport)

    async def publish(self, token: str, body: bytes) -> tuple[int, Any]:
        """The intake's status and JSON answer (202 accepted, 4xx refused, 503 broker away)."""
        try:
            r = await self._http.post("/v1/events", content=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise IntakeUnavailable(type(exc).__name__) from exc
        return r.status_code, _json(r)

    async def receipt(self, token: str, event_id: str) -> tuple[int, Any]:
        try:
            r = await self._http.get(f"/v1/events/{event_id}", headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise IntakeUnavailable(type(exc).__name__) from exc
        return r.status_code, _json(r)

    async def close(self) -> None:
        await self._http.aclose()


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return {"error": {"code": "http_error", "message": f"HTTP {r.status_code}", "fields": []}}


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
