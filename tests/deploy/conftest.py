"""Fixtures for the deployment tests: promtool, and a real Prometheus on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from .deploy_support import PROMETHEUS_MISSING, PROMTOOL_MISSING, require_binary
from .prometheus_server import PrometheusServer


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary; tests that need it skip, with the reason, only when it is absent."""
    return require_binary("promtool", PROMTOOL_MISSING)


@pytest.fixture
def start_prometheus() -> Iterator[Callable[..., PrometheusServer]]:
    """Factory: `start_prometheus({"job": ["127.0.0.1:PORT"]}, rule_files=[...])`.

    Every server started is stopped at teardown. A new Prometheus needs ~5 s before its first
    scrape (service discovery hands over targets at most every 5 s): share one where possible.
    """
    require_binary("prometheus", PROMETHEUS_MISSING)
    started: list[PrometheusServer] = []

    def start(targets: Mapping[str, Sequence[str]], *, rule_files: Sequence[Path] = ()) -> PrometheusServer:
        server = PrometheusServer(targets, rule_files=rule_files).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
