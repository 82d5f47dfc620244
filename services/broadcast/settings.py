"""Broadcast settings (environment) and channel configuration (data, `broadcast.yaml`).

The environment says where to listen and which config file to read; the config file says what
is broadcast to whom: channels and whether they take drills, the radius schedule, expiry.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from topics.catalog import BROADCAST_CHANNELS

DEFAULT_CONFIG = Path(__file__).with_name("broadcast.yaml")
_OFFSET = re.compile(r"^[+-]\d\d:\d\d$")
# CAP 1.2 §3.2.1: sender and identifier must not contain spaces, commas or < &.
_CAP_TOKEN = re.compile(r"^[^\s,<&]+$")


class BroadcastConfigError(ValueError):
    """The broadcast configuration file is invalid (the message names the field)."""


class BroadcastSettings(BaseSettings):
    """Read once in the entry point (prefix REFERRAL_BUS_BROADCAST_)."""

    model_config = SettingsConfigDict(env_prefix="REFERRAL_BUS_BROADCAST_", frozen=True, extra="ignore")

    metrics_port: int = Field(default=9103, ge=0, le=65535, description="0 disables the metrics server.")
    # Loopback unless a deployment says otherwise (Compose sets 0.0.0.0 inside its own network,
    # where Prometheus scrapes it): the metrics name agencies and jurisdictions.
    metrics_host: str = Field(default="127.0.0.1", description="Address the metrics server listens on.")
    http_port: int = Field(default=8103, ge=0, le=65535,
                           description="The CAP feed (Atom) and CAP documents; 0 disables it.")
    http_host: str = "0.0.0.0"
    config: Path = Field(default=DEFAULT_CONFIG, description="Channel and schedule configuration (YAML).")
    group_id: str = Field(default="referral-broadcast",
                          description="Its own consumer group on events.inbound: it sees every event.")
    max_tick_seconds: float = Field(default=5.0, gt=0,
                                    description="Longest sleep between checks for due radius updates.")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RadiusStep(_Frozen):
    """Radius while the time since the child was last seen is under `within` (null: from then on)."""

    within: dt.timedelta | None
    radius_km: int = Field(gt=0, le=20_000)


class ChannelConfig(_Frozen):
    accepts_exercises: bool = False


class FeedConfig(_Frozen):
    title: str = "Missing-child alerts"
    accepts_exercises: bool = False


class BroadcastConfig(_Frozen):
    """The validated `broadcast.yaml`."""

    sender: str = Field(description="CAP <sender>: no spaces, commas, < or &.")
    sender_name: str
    language: str = "zh-CN"
    utc_offset: str = Field(default="+08:00", description="Offset of CAP times (CAP forbids 'Z').")
    expires_after: dt.timedelta = Field(gt=dt.timedelta(0))
    center_decimals: int = Field(default=2, ge=0, le=5,
                                 description="Circle centre rounding: 2 decimals ≈ 1 km, so no address leaks.")
    radius_schedule: tuple[RadiusStep, ...] = Field(min_length=1)
    channels: dict[str, ChannelConfig] = Field(min_length=1)
    feed: FeedConfig = FeedConfig()

    @field_validator("sender")
    @classmethod
    def _cap_token(cls, v: str) -> str:
        if not _CAP_TOKEN.match(v):
            raise ValueError("must not contain spaces, commas, '<' or '&' (CAP 1.2 §3.2.1)")
        return v

    @field_validator("utc_offset")
    @classmethod
    def _offset(cls, v: str) -> str:
        if not _OFFSET.match(v):
            raise ValueError("must look like +08:00")
        return v

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, v: dict[str, ChannelConfig]) -> dict[str, ChannelConfig]:
        unknown = sorted(set(v) - set(BROADCAST_CHANNELS))
        if unknown:
            raise ValueError(f"unknown channel(s) {unknown} (known: {list(BROADCAST_CHANNELS)})")
        return v

    @model_validator(mode="after")
    def _schedule_grows(self) -> BroadcastConfig:
        steps = self.radius_schedule
        if steps[-1].within is not None:
            raise ValueError("radius_schedule: the last step must have within: null (it lasts)")
        for i, (a, b) in enumerate(itertools.pairwise(steps)):
            if a.within is None:
                raise ValueError(f"radius_schedule[{i}]: only the last step may have within: null")
            if b.within is not None and b.within <= a.within:
                raise ValueError(f"radius_schedule[{i + 1}]: within must grow")
            if b.radius_km <= a.radius_km:
                raise ValueError(f"radius_schedule[{i + 1}]: radius_km must grow")
        return self

    @property
    def tz(self) -> dt.timezone:
        sign = -1 if self.utc_offset[0] == "-" else 1
        hours, minutes = int(self.utc_offset[1:3]), int(self.utc_offset[4:6])
        return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))

    def channels_for(self, exercise: bool) -> tuple[str, ...]:
        """The channels a new alert goes to: all of them, or for a drill those that accept drills."""
        return tuple(c for c in BROADCAST_CHANNELS
                     if c in self.channels and (not exercise or self.channels[c].accepts_exercises))

    @classmethod
    def load(cls, path: Path = DEFAULT_CONFIG) -> BroadcastConfig:
        """Read and validate a config file; errors name the file and the field."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls.model_validate(data)
        except (OSError, yaml.YAMLError) as exc:
            raise BroadcastConfigError(f"{path}: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
            raise BroadcastConfigError(f"{path}: {problems}") from exc
