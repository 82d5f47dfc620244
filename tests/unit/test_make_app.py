"""Every faust app of the bus is configured by the bus's settings alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.faust_app import make_app
from bus.settings import KafkaSettings

#: faust reads these from the environment, over the values its app is given.
FAUST_ENVIRONMENT = {
    "BROKER_URL": "kafka://elsewhere:9092",
    "PRODUCER_ACKS": "1",
    "CONSUMER_AUTO_OFFSET_RESET": "latest",
    "BROKER_COMMIT_EVERY": "1",
    "BROKER_SESSION_TIMEOUT": "300",
    "APP_DATADIR": "/nonexistent/faust-data",
}


def test_faust_environment_variables_change_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAUST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:19092", session_timeout_ms=6000)

    conf = make_app("env-test", kafka, tmp_path).conf

    assert [str(url) for url in conf.broker] == ["tuned://127.0.0.1:19092"]
    assert conf.producer_acks == -1
    assert conf.consumer_auto_offset_reset == "earliest"
    assert conf.broker_commit_every == 1000
    assert conf.broker_session_timeout == 6.0
    assert Path(conf.datadir).parent == tmp_path
