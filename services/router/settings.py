"""Router settings, read once in the entry point."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rules.deadlines import Deadlines


class RouterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRAL_BUS_ROUTER_", frozen=True, extra="ignore")

    metrics_port: int = Field(default=9101, ge=0, le=65535, description="0 disables the metrics server.")
    # Loopback unless a deployment says otherwise (Compose sets 0.0.0.0 inside its own network,
    # where Prometheus scrapes it): the metrics name agencies and jurisdictions.
    metrics_host: str = Field(default="127.0.0.1", description="Address the metrics server listens on.")
    app_name: str = "referral-router"
    log_level: str = Field(default="WARNING", description="faust's own log level (the router logs JSON).")
    # The alerts service reads the same file (REFERRAL_BUS_ALERTS_DEADLINES_FILE) for its re-sends
    # and escalations: one variable shortens an alert's deadlines on both sides of the topic.
    alert_deadlines_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("REFERRAL_BUS_ROUTER_ALERT_DEADLINES_FILE",
                                                    "REFERRAL_BUS_ALERTS_DEADLINES_FILE"),
        description="Deadlines of the police alert, replacing the catalog's (drills, tests).")

    def alert_deadlines(self, default: Deadlines) -> Deadlines:
        """The deadlines the police alert is raised with: `alert_deadlines_file` when set, else `default`."""
        return Deadlines.load(self.alert_deadlines_file) if self.alert_deadlines_file else default
