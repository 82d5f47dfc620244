"""What the alerts service records of an answer it does not apply, and when the bus received one.

Pure: no broker, no store. The decision whether an answer applies is `lifecycle.authorise`; the
handlers (`handlers.py`) send what this module builds.

- **Bus time.** An answer is dated by the record the bus's own producer wrote (the intake or the
  console, the only principals that write the answers topic: deploy/acl.yaml), never later than
  the service's own clock; the sender's `responded_at` is kept as claimed only. The record's
  time, unlike the moment the service reads it, is the same when the answer is read again after
  a restart, and does not grow with the service's backlog.
- **Refusals** carry ids and codes only: ids as canonical UUIDs or digests (`bus.boundary.shown_id`),
  an agency and an answer only when they are known codes.
"""

from __future__ import annotations

import datetime as dt

from bus.answer_refusals import AnswerIds, refused, sniff
from schemas.alerts import ParkedAnswer

__all__ = ["AnswerIds", "bus_time", "expired", "refused", "sniff"]

#: How long an answer to an id the service does not know waits for it (topics are not ordered
#: against each other: an answer may be read before its referral). Then it is refused, `unknown_id`.
PARK_SECONDS = 600.0
#: At most this many answers wait for one id, and this many ids have answers waiting: beyond
#: them an answer to an unknown id is refused at once (parked answers are kept in memory).
MAX_PARKED_PER_ID = 8
MAX_PARKED_IDS = 10_000
#: A record time before this is not a time the bus wrote (0, or a producer's unset clock).
_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def bus_time(record_time: float | dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """When the bus received an answer: its record's time (seconds since the epoch), never after
    `now`; `now` when the record has no usable time."""
    if isinstance(record_time, int | float):
        try:
            record_time = dt.datetime.fromtimestamp(record_time, dt.UTC)
        except (OverflowError, OSError, ValueError):
            record_time = None
    if not isinstance(record_time, dt.datetime) or record_time < _EARLIEST:
        return now
    return min(record_time, now)


def expired(parked: ParkedAnswer, now: dt.datetime, window_s: float) -> bool:
    """Whether a parked answer has waited its whole window."""
    return now - parked.parked_at >= dt.timedelta(seconds=window_s)
