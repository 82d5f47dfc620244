"""What the bus records of an answer it does not apply: ids and codes only, never what the sender wrote.

Shared by the alerts service (an answer it may not apply) and the intake's gate (an answer an
agency wrote on its own topic that the intake does not admit): both write a `RefusedAnswer` on
`answers.refused`. Pure: no broker, no store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pydantic_core

from bus.boundary import KEEP_ORIGINAL_BYTES, Position, shown_id
from rules.catalog import catalog
from schemas.alerts import ANSWERS, ReferralResponse
from schemas.answers import RefusalReason, RefusedAnswer
from schemas.errors import FieldError
from schemas.receipts import RefusalField


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
