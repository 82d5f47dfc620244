"""Intake settings, read once in the entry point (prefix REFERRAL_BUS_INTAKE_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The demo credentials checked into the repository: for local use only.
DEFAULT_CREDENTIALS = Path(__file__).resolve().parents[2] / "deploy" / "intake-credentials.yaml"


class IntakeSettings(BaseSettings):
    """How the intake listens, whom it trusts, and how long it waits for the broker."""

    model_config = SettingsConfigDict(env_prefix="REFERRAL_BUS_INTAKE_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    credentials: Path = Field(default=DEFAULT_CREDENTIALS,
                              description="YAML file of agencies, hashed tokens and kind restrictions.")
    # An event is a few KiB at most (description ≤ 4000 chars); anything far larger is not an event.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # How long one request waits for the broker's acknowledgement before answering 503: short,
    # because the client's outbox retries, and a reporter on a poor connection should not hang.
    publish_timeout_s: float = Field(default=5.0, gt=0)
    retry_after_s: int = Field(default=5, ge=1)
    # Each intake replica keeps its own receipt store, so each reads every receipt (its own group).
    instance: str = Field(default="0", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    consume_receipts: bool = True
    # Joining a consumer group takes ~5 s on the local broker: the stream gets longer to start.
    stream_start_timeout_s: float = Field(default=20.0, gt=0)
    # How long an SSE delivery stream waits between keep-alive comments.
    keepalive_s: float = Field(default=15.0, gt=0)
