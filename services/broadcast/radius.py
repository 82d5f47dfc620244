"""The search circle grows with the time since the child was last seen (团圆: 100/200/300/500 km)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from services.broadcast.settings import RadiusStep


def stage_at(schedule: Sequence[RadiusStep], last_seen_at: dt.datetime, now: dt.datetime) -> int:
    """Index of the step in force `now`: the first whose `within` the elapsed time is under.

    A last-seen time in the future (clock skew between agencies) counts as just now.
    """
    elapsed = max(now - last_seen_at, dt.timedelta(0))
    for i, step in enumerate(schedule):
        if step.within is None or elapsed < step.within:
            return i
    return len(schedule) - 1  # unreachable with a validated schedule (the last step lasts)


def radius_km(schedule: Sequence[RadiusStep], stage: int) -> int:
    return schedule[stage].radius_km


def next_change_at(schedule: Sequence[RadiusStep], last_seen_at: dt.datetime, stage: int) -> dt.datetime | None:
    """When the circle next grows after `stage`, or None once it is at its widest."""
    within = schedule[stage].within
    return None if within is None else last_seen_at + within
