"""The broadcast service as a child process (imported by conftest and the tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..conftest import Service

#: The 团圆 schedule shortened by configuration: 100 km for 6 s, 200 until 12 s, 300 until 18 s, then 500.
SHORT_SCHEDULE = [{"within": 6, "radius_km": 100}, {"within": 12, "radius_km": 200},
                  {"within": 18, "radius_km": 300}, {"within": None, "radius_km": 500}]


@dataclass(kw_only=True)
class BroadcastProcess(Service):
    """One `referral-bus broadcast` process; `kill()` then `start()` restarts it with the same ports and config."""

    command: list[str] = field(default_factory=lambda: ["broadcast"])
    http_port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"
