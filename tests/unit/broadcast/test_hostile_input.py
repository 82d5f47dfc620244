"""Issue #17: what a sender writes never stops the broadcast worker, and never comes back out.

The worker's per-message step (`BroadcastWorker.decide`) and its state restore, without a broker.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from unittest.mock import patch

import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from bus.boundary import Position
from bus.settings import KafkaSettings
from schemas.broadcast import CaseBroadcast
from services.broadcast.agents import BroadcastWorker
from services.broadcast.metrics import BroadcastMetrics
from services.broadcast.settings import BroadcastConfig, BroadcastSettings
from tests.unit.broadcast.broadcast_events import T0, release_dict, report_dict

HERE = Position("events.inbound", 0, 3)
MARK = "Zq9-sender-text"


@pytest.fixture
def worker(config: BroadcastConfig) -> BroadcastWorker:
    return BroadcastWorker(KafkaSettings(), BroadcastSettings(), config, BroadcastMetrics(CollectorRegistry()),
                           clock=lambda: T0)


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty_message"),
    (b"[" * 5000, "too_deep"),
    (raw({"event_id": "\ud800"}), "invalid_json"),
    (b'{"x": NaN}', "invalid_json"),
    (b"x" * 200_000, "too_large"),
    (raw({"kind": MARK}), "invalid_event"),
])
def test_invalid_inbound_messages_are_counted_and_left_to_the_router(
        worker: BroadcastWorker, value: bytes | None, reason: str) -> None:
    step = worker.decide(value, HERE)
    assert (step.reason, step.outcome, step.dead_letter) == (reason, None, None)


def test_a_release_whose_public_contact_holds_a_lone_surrogate_is_refused_before_the_model(
        worker: BroadcastWorker) -> None:
    # A string that cannot be written back out must never reach the state the worker writes.
    case = uuid.uuid4()
    assert worker.decide(raw(report_dict(case)), HERE).reason == "decided"
    step = worker.decide(raw(release_dict(case, contact="\udcff110")), HERE)
    assert step.reason == "invalid_json" and step.outcome is None


def test_a_refusal_does_not_repeat_the_senders_role(worker: BroadcastWorker) -> None:
    case = uuid.uuid4()
    release = release_dict(case, agency=None)
    release["reporter"]["role"] = MARK
    worker.decide(raw(report_dict(case)), HERE)
    step = worker.decide(raw(release), HERE)
    assert step.reason == "refused" and step.outcome is not None
    assert MARK not in step.outcome.refusals[0].model_dump_json()


def test_an_unexpected_error_is_one_dead_letter_of_the_broadcast_service(worker: BroadcastWorker) -> None:
    case = uuid.uuid4()
    report = report_dict(case)
    report["description"] = f"seen with {MARK}"

    def explode(*_: Any) -> Any:
        raise RuntimeError(f"cannot handle {MARK}")

    with patch("services.broadcast.agents.on_event", explode), capture_logs() as logs:
        step = worker.decide(raw(report), HERE)
    assert step.reason == "internal_error" and step.dead_letter is not None
    letter = step.dead_letter
    assert (letter.reason, letter.service, letter.event_id) == ("internal_error", "broadcast", str(case))
    assert MARK not in json.dumps(logs) and MARK not in letter.model_dump_json(exclude={"original_b64"})
    # And the next message is decided as usual.
    assert worker.decide(raw(report_dict(uuid.uuid4())), HERE).reason == "decided"


def record(key: bytes | None, value: bytes | None, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("broadcast.state", 0, offset, 0, 0, key, value, None, 0, 0, ())


def test_a_state_record_that_is_not_a_state_is_skipped_and_the_last_good_state_kept(
        worker: BroadcastWorker) -> None:
    case = uuid.uuid4()
    good = CaseBroadcast(case_id=case)
    worker._restore_record(record(str(case).encode(), good.model_dump_json().encode()))
    for key, value in [(str(case).encode(), b"[" * 3000), (b"\xff", good.model_dump_json().encode()),
                       (MARK.encode(), b"{}"), (str(case).encode(), b'{"case_id": "' + MARK.encode() + b'"}'),
                       (str(uuid.uuid4()).encode(), good.model_dump_json().encode())]:
        with capture_logs() as logs:
            worker._restore_record(record(key, value))
        assert logs[0]["event"] == "broadcast_state_skipped" and MARK not in json.dumps(logs)
    assert worker.states == {case: good}
    assert worker.metrics.internal_errors.labels("broadcast_restore")._value.get() == 5
