"""Router settings, read once in the entry point."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RouterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRAL_BUS_ROUTER_", frozen=True, extra="ignore")

    metrics_port: int = Field(default=9101, ge=0, le=65535, description="0 disables the metrics server.")
    # Loopback unless a deployment says otherwise (Compose sets 0.0.0.0 inside its own network,
    # where Prometheus scrapes it): the metrics name agencies and jurisdictions.
    metrics_host: str = Field(default="127.0.0.1", description="Address the metrics server listens on.")
    app_name: str = "referral-router"
    log_level: str = Field(default="WARNING", description="faust's own log level (the router logs JSON).")
