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
from dataclasses import dataclass
from typing import Any

import pydantic_core

from bus.boundary import KEEP_ORIGINAL_BYTES, Position, shown_id
from rules.catalog import catalog
from schemas.alerts import ANSWERS, ParkedAnswer, ReferralResponse
from schemas.answers import RefusalReason, RefusedAnswer
from schemas.errors import FieldError
from schemas.receipts import RefusalField

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


@dataclass(frozen=True)
class AnswerIds:
    """What a refusal may say about an answer: its ids (UUIDs or digests) and known codes only."""

    response_id: str | None = None
    referral_id: str | None = None
    agency: str | None = None
    answer: str | None = None
    exercise: bool = False

    @classmethod
    def of(cls, response: ReferralResponse) -> AnswerIds:
        return cls(str(response.response_id), str(response.referral_id), response.agency, response.answer,
                   response.exercise)


def sniff(raw: bytes | None) -> AnswerIds:
    """The ids and codes of a message that is not a valid answer, as far as they can be told.
    Never raises (it is also what the last resort calls)."""
    try:
        if not raw or len(raw) > KEEP_ORIGINAL_BYTES:
            return AnswerIds()
        obj: Any = pydantic_core.from_json(raw, allow_inf_nan=False)
    except Exception:
        return AnswerIds()
    if not isinstance(obj, dict):
        return AnswerIds()
    agency = obj.get("agency")
    answer = obj.get("answer")
    return AnswerIds(
        response_id=_shown(obj.get("response_id")), referral_id=_shown(obj.get("referral_id")),
        agency=agency if isinstance(agency, str) and agency in catalog().agencies else None,
        answer=answer if isinstance(answer, str) and answer in ANSWERS else None,
        exercise=obj.get("exercise") is True)


def _shown(value: object) -> str | None:
    try:
        return shown_id(value)
    except Exception:
        return None


def refused(ids: AnswerIds, reason: RefusalReason, received_at: dt.datetime, now: dt.datetime, *,
            fields: tuple[FieldError, ...] = (), position: Position | None = None) -> RefusedAnswer:
    """The record of an answer not applied."""
    return RefusedAnswer(
        response_id=ids.response_id, referral_id=ids.referral_id, agency=ids.agency,
        answer=ids.answer,  # checked against ANSWERS in sniff
        reason=reason, fields=tuple(RefusalField(field=f.field, reason=f.reason) for f in fields),
        received_at=received_at, refused_at=now, exercise=ids.exercise,
        topic=position.topic if position else None, partition=position.partition if position else None,
        offset=position.offset if position else None)


def expired(parked: ParkedAnswer, now: dt.datetime, window_s: float) -> bool:
    """Whether a parked answer has waited its whole window."""
    return now - parked.parked_at >= dt.timedelta(seconds=window_s)
