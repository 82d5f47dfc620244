"""An agency's answers from the terminal: kept in a durable outbox, posted to the intake with the
agency's token (`POST /v1/referrals/{id}/answers`), sent again when the bus returns.

An answer is committed to SQLite (`bus.outbox.Outbox`, keyed by its `response_id`) before any
network attempt, so neither a dead intake nor a crash loses it; a resend is harmless (the intake
answers a known `response_id` with its first answer, the alerts service applies it once).
`referral-bus ack|accept|reject|done` add to it and send; `referral-bus outbox` shows it and
`--drain` sends what is pending.
"""

from __future__ import annotations

import json
from pathlib import Path

from bus.client import IntakeClient
from bus.outbox import Item, Outbox
from bus.settings import StateSettings

#: The answers' outbox, beside the events' (`outbox.sqlite`) in the state directory.
ANSWERS_OUTBOX = "answers-outbox.sqlite"


def answers_outbox_path(state: StateSettings | None = None) -> Path:
    return (state or StateSettings()).state_dir / ANSWERS_OUTBOX


def answers_outbox(path: Path | None = None) -> Outbox:
    return Outbox(path or answers_outbox_path(), id_field="response_id")


def answer_path(item: Item) -> str:
    """Where an answer in the outbox is posted: the id it answers is in its body."""
    referral_id = json.loads(item.body)["referral_id"]
    return f"/v1/referrals/{referral_id}/answers"


def answer_client(url: str, token: str, outbox: Outbox, *, timeout_s: float = 10.0) -> IntakeClient:
    """The intake client for answers (same retries, refusals and 401 handling as for events)."""
    return IntakeClient(url, token, outbox, timeout_s=timeout_s, path=answer_path, max_backoff_s=10.0)


def error_code(answer: str | None) -> tuple[str, str]:
    """The intake's error code and message from a refusal kept in the outbox."""
    try:
        error = json.loads(answer or "")["error"]
        return str(error["code"])[:64], str(error["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return "refused", (answer or "")[:300]
