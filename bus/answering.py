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
import re
from pathlib import Path

from bus.client import IntakeClient
from bus.outbox import Item, Outbox
from bus.settings import StateSettings

#: The answers' outboxes, beside the events' (`outbox.sqlite`) in the state directory: one per
#: token, so that answers given with one agency's token are only ever sent with that token.
ANSWERS_DIR = "answers"
_TOKEN_ID = re.compile(r"^rb_([A-Za-z0-9-]{1,32})_")


def answers_dir(state: StateSettings | None = None) -> Path:
    return (state or StateSettings()).state_dir / ANSWERS_DIR


def answers_outbox_path(token: str, state: StateSettings | None = None) -> Path:
    """The outbox of the answers given with `token`, named by the token's id (not its secret)."""
    match = _TOKEN_ID.match(token)
    return answers_dir(state) / f"{match.group(1) if match else 'token'}.sqlite"


def answers_outbox(token: str, state: StateSettings | None = None) -> Outbox:
    return Outbox(answers_outbox_path(token, state), id_field="response_id")


def all_answers_outboxes(state: StateSettings | None = None) -> list[tuple[str, Outbox]]:
    """Every answers outbox in the state directory, by token id."""
    folder = answers_dir(state)
    return [(path.stem, Outbox(path, id_field="response_id")) for path in sorted(folder.glob("*.sqlite"))] \
        if folder.is_dir() else []


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
