"""Fixtures for the broadcast unit tests."""

from __future__ import annotations

import pytest

from services.broadcast.settings import DEFAULT_CONFIG, BroadcastConfig


@pytest.fixture
def config() -> BroadcastConfig:
    return BroadcastConfig.load(DEFAULT_CONFIG)
