"""The 团圆 circle: 100 km within 1 h, 200 within 2, 300 within 3, 500 after."""

from __future__ import annotations

import datetime as dt

import pytest

from services.broadcast import radius
from services.broadcast.settings import BroadcastConfig

from .broadcast_events import T0

H = dt.timedelta(hours=1)


@pytest.mark.parametrize(("elapsed", "expected_km"), [
    (dt.timedelta(0), 100),
    (59 * dt.timedelta(minutes=1), 100),
    (H, 200),                      # "within 1 hour" ends at the hour
    (2 * H - dt.timedelta(seconds=1), 200),
    (2 * H, 300),
    (3 * H, 500),
    (72 * H, 500),
    (-H, 100),                     # a last-seen time in the future (clock skew) counts as now
])
def test_radius_by_time_since_last_seen(config: BroadcastConfig, elapsed: dt.timedelta, expected_km: int) -> None:
    stage = radius.stage_at(config.radius_schedule, T0, T0 + elapsed)
    assert radius.radius_km(config.radius_schedule, stage) == expected_km


def test_next_change_follows_the_schedule_and_stops_at_the_widest(config: BroadcastConfig) -> None:
    schedule = config.radius_schedule
    assert [radius.next_change_at(schedule, T0, s) for s in range(4)] == [T0 + H, T0 + 2 * H, T0 + 3 * H, None]
