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
    # Each intake replica keeps its own receipt store, so each reads every receipt (its own group);
    # it also names the replica in its claims.
    instance: str = Field(default="0", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    consume_receipts: bool = True
    # Joining a consumer group takes ~5 s on the local broker: the stream gets longer to start.
    stream_start_timeout_s: float = Field(default=20.0, gt=0)
    # How long an SSE delivery stream waits between keep-alive comments.
    keepalive_s: float = Field(default=15.0, gt=0)
    # Metrics on a listener of their own, on loopback unless a deployment opens it (Compose does,
    # inside its network): the API port may face the internet, the metrics name agencies.
    metrics_host: str = Field(default="127.0.0.1", description="Address of the /metrics listener.")
    metrics_port: int = Field(default=9105, ge=0, le=65535, description="0 disables the metrics listener.")
    # A request must arrive in time: its head (whenever no route is handling one on the
    # connection) and its body (once the route reads it). A slow client gets 408.
    request_head_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=10.0, gt=0)
    # Failed authentication (services/intake/auth.py): per token id and per client address, this
    # many attempts without a success per window, then 429 until the window ends.
    auth_max_failures: int = Field(default=5, ge=1)
    auth_max_failures_per_client: int = Field(default=20, ge=1)
    auth_window_s: float = Field(default=60.0, gt=0)
    # Event-id ownership shared by replicas through the claims topic (services/intake/claims.py);
    # off, or without a broker, this replica's own store decides alone.
    share_claims: bool = True
    # Answers (`POST /v1/referrals/{id}/answers`): the alerts and referrals agencies may answer,
    # from `alerts.states` (services/intake/duties.py); off, or without a broker, none is known.
    follow_states: bool = True
    # How long an answer to an id this replica does not know yet waits for the states it has not
    # read (a referral tracked a moment before), before it is answered 404.
    answer_lookup_wait_s: float = Field(default=2.0, ge=0, le=30)
    # The gate (services/intake/gate.py): admits what agencies' own systems write on their own
    # topics (agency.<code>.events, agency.<code>.answers), as the HTTP API admits it. Every
    # replica joins one consumer group, so each message is admitted by one replica at a time.
    gate: bool = True
    gate_group: str = Field(default="intake.gate", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # An agency answers a referral it has just read; the alerts service's state of it may come a
    # moment later: the gate waits this long for it before refusing `unknown_id`.
    gate_lookup_wait_s: float = Field(default=10.0, ge=0, le=120)
