"""The notices an agency reads about its own messages the bus refused (`agency.<code>.refusals`). Pure.

Shared by the intake's gate (an event or answer an agency wrote on its own topic) and the alerts
service (an answer the gate or the intake admitted that it then could not apply). Built from what
the bus already recorded for operators (the `Refusal` of an event, the ids of an answer), so a
notice can say no more than that record: codes, field names and ids.
"""

from __future__ import annotations

import datetime as dt

from bus.answer_refusals import AnswerIds
from bus.boundary import Position, Refusal
from schemas.errors import FieldError
from schemas.notices import RefusalNotice
from schemas.receipts import RefusalField


def event_notice(refusal: Refusal, position: Position, at: dt.datetime) -> RefusalNotice:
    """The notice of an event the gate refused (its dead letter's reason, fields and id)."""
    return RefusalNotice(message="event", reason=refusal.reason, fields=_fields(refusal.fields),
                         event_id=refusal.event_id, topic=position.topic, partition=position.partition,
                         offset=position.offset, received_at=at, refused_at=at)


def answer_notice(ids: AnswerIds, reason: str, fields: tuple[FieldError, ...], position: Position,
                  received_at: dt.datetime, refused_at: dt.datetime) -> RefusalNotice:
    """The notice of an answer the gate or the alerts service refused (its refused answer's
    reason, fields, ids and times)."""
    return RefusalNotice(message="answer", reason=reason, fields=_fields(fields), response_id=ids.response_id,
                         referral_id=ids.referral_id, topic=position.topic, partition=position.partition,
                         offset=position.offset, received_at=received_at, refused_at=refused_at)


def _fields(fields: tuple[FieldError, ...]) -> tuple[RefusalField, ...]:
    return tuple(RefusalField(field=f.field, reason=f.reason) for f in fields)
