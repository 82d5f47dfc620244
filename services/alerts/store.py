"""What the alerts service's handlers need from storage and from the broker, as two small protocols.

The handlers (`handlers.py`) decide; a store keeps the tracked states, the cases and the answers
parked until their referral arrives; a sender produces an output and waits for the broker's ack.
`MappingStore` keeps them as the JSON bytes the state topics carry, over any mutable mapping: the
faust tables in the worker (`tables.py`), plain dicts in tests.

Only the service itself writes these values while it runs; what it restores from the changelog
topics is screened first (`screen`): a record that is not one of its own is left out and counted.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any, Protocol

from bus.boundary import CASE_CHANGE, PARKED, TRACKED_STATE, Contract, Refusal
from schemas.alerts import CaseChange, ParkedAnswer, ReferralResponse, TrackedState, dump


class AlertStore(Protocol):
    """Tracked states (`alerts.states`), cases (`cases.changes`) and parked answers (`alerts.parked`)."""

    def tracks(self, key: str) -> bool: ...

    def state(self, key: str) -> TrackedState | None: ...

    def put_state(self, state: TrackedState) -> None: ...

    def states(self) -> Iterator[TrackedState]: ...

    def case(self, case_id: uuid.UUID | str) -> CaseChange | None: ...

    def put_case(self, case: CaseChange) -> None: ...

    def cases(self) -> Iterator[CaseChange]: ...

    def parked(self, key: str) -> list[ParkedAnswer]: ...

    def park(self, key: str, answers: Sequence[ParkedAnswer]) -> None: ...

    def unpark(self, key: str) -> None: ...

    def parked_keys(self) -> list[str]: ...


class Sender(Protocol):
    """Produces one message and returns once the broker has acknowledged it (or raises)."""

    async def send(self, topic: str, key: bytes, value: bytes) -> None: ...


class MappingStore:
    """An `AlertStore` over three mappings of key -> the JSON bytes of the state topics."""

    def __init__(self, tracked: MutableMapping[str, bytes], cases: MutableMapping[str, bytes],
                 parked: MutableMapping[str, bytes]) -> None:
        self.tracked, self.cases_by_id, self.parked_by_key = tracked, cases, parked

    def tracks(self, key: str) -> bool:
        return key in self.tracked

    def state(self, key: str) -> TrackedState | None:
        raw = self.tracked.get(key)
        return None if raw is None else TrackedState.model_validate_json(raw)

    def put_state(self, state: TrackedState) -> None:
        self.tracked[str(state.id)] = dump(state)

    def states(self) -> Iterator[TrackedState]:
        for raw in list(self.tracked.values()):
            yield TrackedState.model_validate_json(raw)

    def case(self, case_id: uuid.UUID | str) -> CaseChange | None:
        raw = self.cases_by_id.get(str(case_id))
        return None if raw is None else CaseChange.model_validate_json(raw)

    def put_case(self, case: CaseChange) -> None:
        self.cases_by_id[str(case.case_id)] = dump(case)

    def cases(self) -> Iterator[CaseChange]:
        for raw in list(self.cases_by_id.values()):
            yield CaseChange.model_validate_json(raw)

    def parked(self, key: str) -> list[ParkedAnswer]:
        raw = self.parked_by_key.get(key)
        return [] if raw is None else parked_answers(json.loads(raw))

    def park(self, key: str, answers: Sequence[ParkedAnswer]) -> None:
        self.parked_by_key[key] = json.dumps([a.model_dump(mode="json") for a in answers]).encode()

    def unpark(self, key: str) -> None:
        self.parked_by_key.pop(key, None)

    def parked_keys(self) -> list[str]:
        return list(self.parked_by_key.keys())


def parked_answers(items: Sequence[Any], now: dt.datetime | None = None) -> list[ParkedAnswer]:
    """Parked values as the service writes them. An answer parked before the bus dated answers
    itself (a bare `ReferralResponse`) has no bus time: it is dated now (never earlier than it
    came), and its parking window counts from its sender's time, at the latest now, so that it
    ends once whichever way it is read."""
    at = now or dt.datetime.now(dt.UTC)
    out = []
    for item in items:
        if isinstance(item, dict) and "response" in item:
            out.append(ParkedAnswer.model_validate(item))
        else:
            response = ReferralResponse.model_validate(item)
            out.append(ParkedAnswer(response=response, received_at=at, parked_at=min(response.responded_at, at)))
    return out


#: What each state topic holds, and how a record's key must relate to it.
def _state_key(state: TrackedState) -> str:
    return str(state.id)


def _case_key(case: CaseChange) -> str:
    return str(case.case_id)


def screen(topic: str, latest: Mapping[str, bytes]) -> tuple[dict[str, bytes], Counter[str]]:
    """The values of a changelog the service may restore, and the rest counted by reason.

    A value must decode through the trust boundary as what its topic holds, under the key the
    service would have written it with; anything else (another writer's record, a bug's) is left
    out of the restored table, so that no handler ever meets it.
    """
    kept: dict[str, bytes] = {}
    refused: Counter[str] = Counter()
    for key, raw in latest.items():
        reason = _check(topic, key, raw)
        if reason is None:
            kept[key] = raw
        else:
            refused[reason] += 1
    return kept, refused


def _check(topic: str, key: str, raw: bytes) -> str | None:
    from topics.catalog import ALERT_PARKED, ALERT_STATES, CASES

    contract: Contract[Any]
    if topic == ALERT_STATES.name:
        contract = TRACKED_STATE
    elif topic == CASES.name:
        contract = CASE_CHANGE
    elif topic == ALERT_PARKED.name:
        contract = PARKED
    else:
        return "unknown_topic"
    value = contract.decode(raw)
    if isinstance(value, Refusal):
        return value.reason
    if isinstance(value, TrackedState):
        return None if _state_key(value) == key else "wrong_key"
    if isinstance(value, CaseChange):
        return None if _case_key(value) == key else "wrong_key"
    try:
        return None if str(uuid.UUID(key)) == key else "wrong_key"
    except ValueError:
        return "wrong_key"
