"""Operator tools for refused messages: list the dead-letter topic, re-submit fixed events."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import ValidationError

from bus.boundary import EVENT, Refusal
from bus.kafka.clients import producer as make_producer
from bus.kafka.reader import read_all
from bus.settings import KafkaSettings
from schemas.receipts import audit_record
from schemas.referrals import DeadLetter
from topics.catalog import AUDIT, DEAD_LETTERS, EVENTS


async def read_dead_letters(kafka: KafkaSettings) -> list[DeadLetter]:
    """Every dead letter currently on the topic, oldest first (no group: reading commits nothing)."""
    out: list[DeadLetter] = []
    for record in await read_all(kafka, [DEAD_LETTERS.name]):
        try:
            out.append(DeadLetter.model_validate_json(record.value or b""))
        except ValidationError:
            continue
    return out


async def replay_events(kafka: KafkaSettings, bodies: list[bytes]) -> tuple[list[tuple[int, str]], int]:
    """Validate and publish fixed events; returns (still-invalid: [(n, fields)], published count).

    Nothing is published unless every event is valid: a half-replayed batch is harder to reason
    about than a refused one.
    """
    problems: list[tuple[int, str]] = []
    events = []
    for n, body in enumerate(bodies, 1):
        # Through the same boundary as the router: what it would dead-letter again is refused here.
        event = EVENT.decode(body)
        if isinstance(event, Refusal):
            problems.append((n, event.summary()))
        else:
            events.append((body, event))
    if problems:
        return problems, 0
    producer = make_producer(kafka)
    await producer.start()
    try:
        now = dt.datetime.now(dt.UTC)
        for body, event in events:
            key = str(event.case_id or event.event_id).encode()
            await producer.send_and_wait(EVENTS.name, value=body, key=key)
            record = audit_record(event.event_id, "replayed", "operator", now, detail=_run_id())
            await producer.send_and_wait(AUDIT.name, value=record.model_dump_json().encode(), key=record.key)
    finally:
        await producer.stop()
    return [], len(events)


def _run_id() -> str:
    """Distinguishes two replays of one event in the audit trail (deterministic ids otherwise merge)."""
    return uuid.uuid4().hex[:12]
