"""Alerts service settings, read once in the entry point (env prefix REFERRAL_BUS_ALERTS_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rules.deadlines import Deadlines

CASES_FILE = Path(__file__).parent / "cases.yaml"


class AlertsSettings(BaseSettings):
    """`deadlines_file` replaces the catalog's deadlines for alerts, e.g. to shorten them in drills
    and tests; the router raises the alert with the same file (it reads this variable too, beside
    its own `REFERRAL_BUS_ROUTER_ALERT_DEADLINES_FILE`)."""

    model_config = SettingsConfigDict(env_prefix="REFERRAL_BUS_ALERTS_", frozen=True, extra="ignore")

    metrics_host: str = Field(default="127.0.0.1", description="Address the metrics server listens on.")
    metrics_port: int = Field(default=9102, ge=0, le=65535, description="0 disables the metrics server.")
    app_name: str = "referral-alerts"
    log_level: str = Field(default="WARNING", description="faust's and aiokafka's log level (the service logs JSON).")
    deadlines_file: Path | None = None
    cases_file: Path = CASES_FILE
    resends: int = Field(default=1, ge=0, le=10, description="Re-sends to the same receiver before escalating.")
    timer_interval: float = Field(default=0.5, gt=0, description="Seconds between scans of pending deadlines.")
    lag_interval: float = Field(default=15.0, ge=0, description="Seconds between consumer-lag scans; 0: off.")
    router_group: str = Field(default="referral-router", description="The router's consumer group (for lag).")
    park_seconds: float = Field(default=600.0, gt=0, description="How long an answer to an id not tracked yet waits "
                                                                 "for it before it is refused (unknown_id).")

    def deadlines(self, default: Deadlines | None = None) -> Deadlines:
        """The deadlines alerts use: `deadlines_file` when set, else `default` (the catalog's)."""
        if self.deadlines_file is not None:
            return Deadlines.load(self.deadlines_file)
        return default if default is not None else Deadlines.load()
