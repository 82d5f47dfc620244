"""How a service process runs its faust worker: thread switches and a frozen startup heap."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any, ClassVar

import faust
import pytest

from bus.faust_app import WORKER_SWITCH_INTERVAL_S, make_app, run_worker
from bus.settings import KafkaSettings


class RecordingWorker:
    started: ClassVar[list[Any]] = []

    def __init__(self, app: Any, **options: Any) -> None:
        self.app, self.options = app, options

    def execute_from_commandline(self) -> None:
        RecordingWorker.started.append((self.app, self.options, sys.getswitchinterval(), gc.get_freeze_count()))


def test_the_worker_runs_with_short_thread_switches_and_the_startup_objects_frozen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app("worker-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    monkeypatch.setattr(faust, "Worker", RecordingWorker)  # the faust module bus.faust_app calls
    before = sys.getswitchinterval()
    try:
        run_worker(app, loglevel="WARNING")
    finally:
        sys.setswitchinterval(before)
        gc.unfreeze()
    (ran_app, options, interval, frozen), = RecordingWorker.started
    assert ran_app is app and options["loglevel"] == "WARNING"
    assert interval == pytest.approx(WORKER_SWITCH_INTERVAL_S)
    assert frozen > 0
