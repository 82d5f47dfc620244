"""The reporter's side: the form's choices, publishing through the intake with the reporter's own
agency token, and the receipt told in the reporter's terms (who was told, under which plan and
article, by when; or why it was refused and what to fix).

The console does not publish reports itself: the intake is the bus's door for agencies' events (its
checks, its idempotency by `event_id`, its receipts), and the reporter's session holds the token
the intake knows them by. (The one event the console publishes is the police's resolution of a
case its officers close, `closing.py`.) The browser keeps a report on the device until the intake has it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from rules.catalog import catalog


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
