"""What the alerts service's handlers need from storage and from the broker, as two small protocols.

The handlers (`handlers.py`) decide; a store keeps the tracked states, the cases and the answers
parked until their referral arrives; a sender produces an output and waits for the broker's ack.
`MappingStore` keeps them as the JSON bytes the state topics carry, over any mutable mapping: the
faust tables in the worker (`tables.py`), plain dicts in tests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Protocol

from schemas.alerts import CaseChange, ReferralResponse, TrackedState, dump


class AlertStore(Protocol):
    """Tracked states (`alerts.states`), cases (`cases.changes`) and parked answers (`alerts.parked`)."""

    def tracks(self, key: str) -> bool: ...

    def state(self, key: str) -> TrackedState | None: ...

    def put_state(self, state: TrackedState) -> None: ...

    def states(self) -> Iterator[TrackedState]: ...

    def case(self, case_id: uuid.UUID | str) -> CaseChange | None: ...

    def put_case(self, case: CaseChange) -> None: ...

    def cases(self) -> Iterator[CaseChange]: ...

    def parked(self, key: str) -> list[ReferralResponse]: ...

    def park(self, key: str, responses: Sequence[ReferralResponse]) -> None: ...

    def unpark(self, key: str) -> None: ...


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

    def parked(self, key: str) -> list[ReferralResponse]:
        return [ReferralResponse.model_validate(item) for item in json.loads(self.parked_by_key.get(key) or b"[]")]

    def park(self, key: str, responses: Sequence[ReferralResponse]) -> None:
        self.parked_by_key[key] = json.dumps([r.model_dump(mode="json") for r in responses]).encode()

    def unpark(self, key: str) -> None:
        self.parked_by_key.pop(key, None)
