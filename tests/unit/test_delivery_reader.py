"""The delivery reader's per-message step (`tail`, the intake's stream), without a broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from bus.agency_reader import AgencyReader
from bus.delivery_metrics import DeliveryMetrics
from bus.demo_events import scripted_events
from bus.settings import KafkaSettings
from rules.deadlines import Deadlines
from rules.engine import load_rulebook, route
from schemas.events import parse_event_obj
from schemas.referrals import Referral

TP = TopicPartition("referrals.police.command_center", 0)
MARK = "Zq9-sender-text"


@pytest.fixture
def reader(tmp_path: Path) -> AgencyReader:
    return AgencyReader(KafkaSettings(), tmp_path, "police.command_center", group="delivery.police.command_center",
                        metrics=DeliveryMetrics(CollectorRegistry()))


def lead_referral() -> Referral:
    event = parse_event_obj(scripted_events()[0])
    return next(r for r in route(event, load_rulebook(), deadlines=Deadlines.load())
                if r.agency == "police.command_center")


def refused(reader: AgencyReader, reason: str) -> float:
    value = reader._metrics.refused.labels(reason)._value.get()
    assert isinstance(value, float)
    return value


def test_a_referral_is_handed_over_once(reader: AgencyReader) -> None:
    referral = lead_referral()
    assert reader.examine(referral.model_dump_json().encode(), TP, 0) == referral
    assert reader._seen is not None and reader._seen.first_time(str(referral.referral_id))
    assert reader.examine(referral.model_dump_json().encode(), TP, 1) == "duplicate"


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty_message"), (b"[" * 4000, "too_deep"), (b'{"referral_id": NaN}', "invalid_json"),
    (json.dumps({"kind": "\ud800"}).encode(), "invalid_json"), (b"{}", "invalid_referral"),
    (json.dumps({"referral_id": MARK, MARK: 1}).encode(), "invalid_referral"),
])
def test_what_is_not_a_referral_is_counted_and_logged_by_position_only(
        reader: AgencyReader, value: bytes | None, reason: str) -> None:
    with capture_logs() as logs:
        assert reader.examine(value, TP, 9) == reason
    assert refused(reader, reason) == 1
    assert logs == [{"event": "referral_refused", "reason": reason, "topic": TP.topic, "partition": 0,
                     "offset": 9, "log_level": "error"}]


def test_another_agencys_referral_on_this_topic_is_refused(reader: AgencyReader) -> None:
    other = lead_referral().model_copy(update={"agency": "youth_league"})
    assert reader.examine(other.model_dump_json().encode(), TP, 0) == "wrong_agency"


def test_an_unexpected_error_is_counted_and_the_reader_goes_on(reader: AgencyReader) -> None:
    def explode(*_: Any) -> Any:
        raise KeyError(MARK)

    referral = lead_referral()
    with patch("bus.agency_reader.REFERRAL.decode", explode), capture_logs() as logs:
        assert reader.examine(referral.model_dump_json().encode(), TP, 4) == "internal_error"
    assert MARK not in json.dumps(logs)
    assert refused(reader, "internal_error") == 1
    assert reader.examine(referral.model_dump_json().encode(), TP, 5) == referral
