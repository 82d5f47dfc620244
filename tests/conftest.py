"""Fixtures shared by every test tier."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.kafka.admin import create_topics
from bus.local_broker import LocalBroker
from bus.settings import KafkaSettings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A fresh broker per test, every catalog topic created."""
    b = LocalBroker(log_path=tmp_path / "tansu.log").start()
    try:
        asyncio.run(create_topics(KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=b.bootstrap)))
        yield b
    finally:
        b.stop()
