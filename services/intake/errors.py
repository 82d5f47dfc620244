"""The intake's stable JSON error format: `{"error": {"code", "message", "fields": [{field, reason}]}}`.

Codes are stable strings clients may switch on; `fields` names each failing field and why,
never the value sent (it may be a victim's personal data).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from schemas.errors import FieldError


class ErrorBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str = Field(description="Stable code: invalid_json, invalid_event, unauthenticated, ...")
    message: str
    fields: list[FieldError] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx the intake returns has this shape."""

    model_config = ConfigDict(frozen=True)

    error: ErrorBody


class IntakeError(Exception):
    """A refusal with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str, *, fields: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = ErrorResponse(error=ErrorBody(code=self.code, message=self.message, fields=self.fields))
        return JSONResponse(body.model_dump(), status_code=self.status, headers=self.headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error statuses."""
    return {s: {"model": ErrorResponse} for s in statuses}
