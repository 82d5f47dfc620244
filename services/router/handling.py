"""The router's per-message step, free of faust: decode, validate, route, and say what to send.

The agent in `agents.py` only feeds messages in and sends what comes out, so this whole path
is tested without a broker.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import ValidationError

from rules.deadlines import Deadlines
from rules.engine import RuleBook, route
from schemas.errors import field_errors, summary
from schemas.events import Event, parse_event
from schemas.referrals import DeadLetter, Referral
from schemas.wire import UNSUPPORTED_VERSION
from topics.catalog import DEAD_LETTERS, referral_topic_name


@dataclass(frozen=True)
class Outgoing:
    """One message to produce."""

    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Routed:
    event: Event
    referrals: tuple[Referral, ...]
    messages: tuple[Outgoing, ...]


@dataclass(frozen=True)
class Refused:
    dead_letter: DeadLetter
    messages: tuple[Outgoing, ...]


#: Further outputs of a routed event (police alerts, receipts, ...), each a pure function.
Emitter = Callable[[Event, Sequence[Referral]], Sequence[Outgoing]]


@runtime_checkable
class RefusalEmitter(Protocol):
    """An emitter that also has outputs for a refused message (the reporter's 'refused' receipt)."""

    def refused(self, letter: DeadLetter) -> Sequence[Outgoing]: ...


@dataclass(frozen=True)
class Position:
    """Where an inbound message came from, for the dead-letter record."""

    topic: str
    partition: int
    offset: int


def referral_messages(referrals: Sequence[Referral]) -> tuple[Outgoing, ...]:
    return tuple(
        Outgoing(referral_topic_name(r.agency), r.key, r.model_dump_json().encode()) for r in referrals
    )


@dataclass(frozen=True)
class Router:
    """Routes raw inbound messages with one rule book; `emitters` add outputs beside referrals."""

    book: RuleBook
    deadlines: Deadlines
    emitters: tuple[Emitter, ...] = field(default=())

    def handle(self, raw: bytes | None, position: Position,
               now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> Routed | Refused:
        try:
            if raw is None:
                raise _Invalid("empty_message", [{"field": "(message)", "reason": "no value"}])
            try:
                event = parse_event(raw)
            except ValidationError as exc:
                if _is_json_syntax_error(exc):
                    raise _Invalid("invalid_json", [{"field": "(message)", "reason": "not valid JSON"}]) from exc
                errors = field_errors(exc)
                reason = UNSUPPORTED_VERSION if _is_unsupported_version(exc) else "invalid_event"
                raise _Invalid(reason, [e.model_dump() for e in errors]) from exc
        except _Invalid as bad:
            return self._refuse(raw, position, bad, now())
        referrals = tuple(route(event, self.book, deadlines=self.deadlines))
        messages = referral_messages(referrals)
        for emit in self.emitters:
            messages += tuple(emit(event, referrals))
        return Routed(event, referrals, messages)

    def _refuse(self, raw: bytes | None, position: Position, bad: _Invalid, at: dt.datetime) -> Refused:
        letter = DeadLetter(
            reason=bad.reason,
            errors=bad.errors,
            topic=position.topic,
            partition=position.partition,
            offset=position.offset,
            original_b64=base64.b64encode(raw or b"").decode(),
            received_at=at,
            event_id=_event_id_if_any(raw),
        )
        key = (letter.event_id or f"{position.topic}:{position.partition}:{position.offset}").encode()
        messages = (Outgoing(DEAD_LETTERS.name, key, letter.model_dump_json().encode()),)
        for emit in self.emitters:
            if isinstance(emit, RefusalEmitter):
                messages += tuple(emit.refused(letter))
        return Refused(letter, messages)


class _Invalid(Exception):
    def __init__(self, reason: str, errors: list[dict[str, str]]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors


def _is_unsupported_version(exc: ValidationError) -> bool:
    """A message of a schema major version this router does not read (schemas/wire.py)."""
    return any(e["type"] == UNSUPPORTED_VERSION for e in exc.errors(include_input=False))


def _is_json_syntax_error(exc: ValidationError) -> bool:
    return any(e["type"] == "json_invalid" for e in exc.errors(include_input=False))


def _event_id_if_any(raw: bytes | None) -> str | None:
    """The event id of a refused message when it can be read, so the reporter can be told."""
    try:
        obj = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    value = obj.get("event_id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None


def describe_refusal(letter: DeadLetter) -> str:
    """One line for operators: the reason and each failing field (no values)."""
    from schemas.errors import FieldError

    return f"{letter.reason}: " + summary([FieldError(**e) for e in letter.errors])
