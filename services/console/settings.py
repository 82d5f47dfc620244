"""Console settings, read once in the entry point (env prefix REFERRAL_BUS_CONSOLE_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
#: The demo officers checked into the repository: for local use only (their passwords are public).
DEFAULT_OFFICERS = _DEPLOY / "console-officers.yaml"
#: The agency tokens (the intake's file): a reporter or a desk may sign in with one.
DEFAULT_AGENCY_CREDENTIALS = _DEPLOY / "intake-credentials.yaml"
FORM_FILE = Path(__file__).with_name("report_form.yaml")


class ConsoleSettings(BaseSettings):
    """Where the console listens, whom it signs in, where answers and reports go."""

    model_config = SettingsConfigDict(env_prefix="REFERRAL_BUS_CONSOLE_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8104, ge=0, le=65535)
    metrics_port: int = Field(default=9104, ge=0, le=65535, description="0 disables the metrics server.")
    metrics_host: str = Field(default="127.0.0.1", description="Loopback by default: metrics carry no token.")
    officers: Path = Field(default=DEFAULT_OFFICERS, description="YAML: one entry per officer (scrypt-hashed).")
    agency_credentials: Path = Field(default=DEFAULT_AGENCY_CREDENTIALS,
                                     description="The agency-token file the intake uses (signing in by token).")
    form: Path = Field(default=FORM_FILE, description="What the reporter form offers (kinds, roles).")
    # A duty shift; an idle desk (no request, no open board) is signed out sooner.
    session_hours: float = Field(default=12.0, gt=0)
    idle_minutes: float = Field(default=60.0, gt=0)
    # Failed sign-ins (each a scrypt check) allowed per officer id or token id, and per client
    # address, in a window; beyond that 429 until the window ends (bus.throttle).
    sign_in_max_failures: int = Field(default=5, ge=1)
    sign_in_max_failures_per_client: int = Field(default=20, ge=1)
    sign_in_window_s: float = Field(default=60.0, gt=0)
    secure_cookies: bool = Field(default=False, description="Set behind HTTPS: the session cookie is Secure.")
    # Answers: produced on the answers topic, or (when set) posted to the bus's HTTP answer
    # endpoint, `{answer_url}/v1/referrals/{id}/answers` with `answer_token` (DECISIONS.md 2).
    answer_url: str = ""
    answer_token: str = ""
    publish_timeout_s: float = Field(default=3.0, gt=0, description="How long an answer waits for the broker.")
    retry_max_s: float = Field(default=10.0, gt=0, description="Longest wait between retries of a queued answer.")
    # The reporter form publishes through the intake, with the reporter's own agency token.
    intake_url: str = "http://127.0.0.1:8080"
    keepalive_s: float = Field(default=15.0, gt=0, description="Seconds between keep-alive comments on the board.")
    recent_hours: float = Field(default=24.0, gt=0, description="Finished alerts stay on the board this long.")
