"""The router's per-message step, free of faust: decode, validate, route, and say what to send.

The agent in `agents.py` only feeds messages in and sends what comes out, so this whole path
is tested without a broker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from pydantic_core import to_json

from bus.boundary import EVENT, Position, Refusal, dead_letter, fault, sniff_ids
from rules.deadlines import Deadlines
from rules.engine import DutyFields, RuleBook, WrittenReferral, route_written
from schemas.encoding import made
from schemas.events import Event
from schemas.referrals import DeadLetter, Referral
from topics.catalog import DEAD_LETTERS, referral_topic_name

__all__ = ["PART_FIELDS", "Emitter", "Outgoing", "Position", "RefusalEmitter", "Refused", "Routed", "Router",
           "describe_refusal", "event_parts", "made", "referral_messages", "written_referrals"]


class Outgoing(NamedTuple):
    """One message to produce. (A named tuple: a dozen per event, built in a fraction of a
    frozen dataclass's time.)"""

    topic: str
    key: bytes
    value: bytes


class Routed(NamedTuple):
    """A routed event, its referrals as the engine wrote them, and every message to produce for
    it. (A named tuple, like `Outgoing`: one per event, made with `made`.)"""

    event: Event
    #: Each referral's duty, message and parts (`route_written`): the step builds no model.
    written: tuple[WrittenReferral, ...]
    messages: tuple[Outgoing, ...]
    reason: str = "routed"

    @property
    def referrals(self) -> tuple[Referral, ...]:
        """The referrals as models, read back from their messages (for readers and tests)."""
        return tuple([w.referral for w in self.written])


@dataclass(frozen=True)
class Refused:
    dead_letter: DeadLetter
    messages: tuple[Outgoing, ...]

    @property
    def reason(self) -> str:
        return self.dead_letter.reason


#: Further outputs of a routed event (police alerts, receipts, ...), each a pure function of the
#: event and its referrals as the engine wrote them (`route_written`: each with its message and
#: the JSON of its per-event fields, which the outputs reuse rather than serialise again).
Emitter = Callable[[Event, Sequence[WrittenReferral]], Sequence[Outgoing]]

#: The fields of a referral in `WrittenReferral.parts` (rules/engine.py `_EVENT_FIELDS`).
PART_FIELDS = ("referral_id", "event_id", "kind", "jurisdiction", "reported_at", "ack_by", "due_by",
               "exercise", "expired_plan", "case_id", "subject")


@runtime_checkable
class RefusalEmitter(Protocol):
    """An emitter that also has outputs for a refused message (the reporter's 'refused' receipt)."""

    def refused(self, letter: DeadLetter) -> Sequence[Outgoing]: ...


def referral_messages(written: Sequence[WrittenReferral]) -> tuple[Outgoing, ...]:
    """One message per referral of one event, on its agency's topic, as the engine wrote it;
    keyed by the event's case (or the event): `Referral.key`, the same for all of them."""
    if not written:
        return ()
    # `Referral.key` (the case id, else the event id, as text), from the JSON the engine wrote.
    parts = written[0].parts
    case_id = parts["case_id"]
    key = (parts["event_id"] if case_id == b"null" else case_id)[1:-1]
    return tuple([made(Outgoing, (referral_topic_name(r.agency), key, value)) for r, value, _ in written])


def event_parts(event: Event, written: Sequence[WrittenReferral]) -> Mapping[str, bytes]:
    """The JSON of the event's fields that its referrals carry (event_id, kind, jurisdiction,
    reported_at, exercise, case_id): its first referral's parts, or, with none, written now."""
    if written:
        return written[0].parts
    return {"event_id": to_json(event.event_id), "kind": to_json(event.kind),
            "jurisdiction": to_json(event.jurisdiction), "reported_at": to_json(event.reported_at),
            "exercise": to_json(event.exercise), "case_id": to_json(event.case_id)}


def written_referrals(referrals: Iterable[Referral]) -> list[WrittenReferral]:
    """Referrals held as models, written as `route_written` writes them (each duty's fields, its
    message and its parts): for an `Emitter` called outside the router's step (tests, tools)."""
    return [WrittenReferral(DutyFields.of(r), r.model_dump_json().encode(),
                            {name: to_json(getattr(r, name)) for name in PART_FIELDS})
            for r in referrals]


@dataclass(frozen=True)
class Router:
    """Routes raw inbound messages with one rule book; `emitters` add outputs beside referrals."""

    book: RuleBook
    deadlines: Deadlines
    emitters: tuple[Emitter, ...] = field(default=())

    def handle(self, raw: bytes | None, position: Position,
               now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> Routed | Refused:
        """Exactly one outcome for any message: routed, or refused with a dead letter.

        Whatever the bytes, nothing raises: a message the boundary refuses is a dead letter with
        its reason, and an unexpected exception anywhere in the step (a bug, a rule that cannot
        handle an event) is the last resort's dead letter `internal_error`, so the worker goes
        on and the message is kept for a replay once the bug is fixed.
        """
        try:
            return self._handle(raw, position, now)
        except Exception as exc:
            event_id, _ = sniff_ids(raw)
            refusal = fault("route", exc, event_id=event_id, topic=position.topic,
                            partition=position.partition, offset=position.offset)
            letter = dead_letter(Refusal(refusal.reason, refusal.fields, event_id), raw, position, now())
            return Refused(letter, (_dead_letter_message(letter, position),))

    def _handle(self, raw: bytes | None, position: Position, now: Callable[[], dt.datetime]) -> Routed | Refused:
        decoded = EVENT.decode(raw)
        if isinstance(decoded, Refusal):
            return self._refuse(raw, position, decoded, now())
        written = route_written(decoded, self.book, deadlines=self.deadlines)
        messages = list(referral_messages(written))
        for emit in self.emitters:
            messages += emit(decoded, written)
        routed: Routed = made(Routed, (decoded, tuple(written), tuple(messages), "routed"))
        return routed

    def _refuse(self, raw: bytes | None, position: Position, refusal: Refusal, at: dt.datetime) -> Refused:
        letter = dead_letter(refusal, raw, position, at)
        messages: tuple[Outgoing, ...] = (_dead_letter_message(letter, position),)
        for emit in self.emitters:
            if isinstance(emit, RefusalEmitter):
                messages += tuple(emit.refused(letter))
        return Refused(letter, messages)


def _dead_letter_message(letter: DeadLetter, position: Position) -> Outgoing:
    key = (letter.event_id or f"{position.topic}:{position.partition}:{position.offset}").encode()
    return Outgoing(DEAD_LETTERS.name, key, letter.model_dump_json().encode())


def describe_refusal(letter: DeadLetter) -> str:
    """One line for operators: the reason and each failing field (no values)."""
    return f"{letter.reason}: " + "; ".join(f"{e['field']}: {e['reason']}" for e in letter.errors)
