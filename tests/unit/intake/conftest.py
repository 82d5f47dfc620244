"""Fixtures for the intake's unit tests: the app with a fake publisher, no broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# The helpers module sits beside this file; make it importable however pytest was invoked.
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from bus.settings import KafkaSettings, StateSettings
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.unit.intake.intake_fakes import FakePublisher


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def settings() -> IntakeSettings:
    return IntakeSettings(max_body_bytes=8192, consume_receipts=False)


@pytest.fixture
def client(publisher: FakePublisher, settings: IntakeSettings, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(settings, KafkaSettings(), StateSettings(state_dir=tmp_path),
                     publisher=publisher, registry=CollectorRegistry())
    with TestClient(app) as c:
        yield c
