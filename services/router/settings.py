"""Router settings, read once in the entry point."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RouterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRAL_BUS_ROUTER_", frozen=True, extra="ignore")

    metrics_port: int = Field(default=9101, ge=0, le=65535, description="0 disables the metrics server.")
    app_name: str = "referral-router"
    log_level: str = Field(default="WARNING", description="faust's own log level (the router logs JSON).")
