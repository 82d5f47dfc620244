"""The router when the broker stops answering while one of its offset commits is in flight.

aiokafka retries a commit for as long as the group coordinator is unknown, which is as long as
the broker does not answer; a worker that checked its deliveries only before a commit or after
an agent's batch waited with it, however many of its sends had failed meanwhile. The delivery
guard crashes the worker the moment a watched delivery fails: it exits while the broker is still
frozen, commits nothing past the lost outputs, and its restart routes every event."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka.protocol.commit import OffsetCommitRequest_v2
from aiokafka.protocol.produce import ProduceRequest_v5

from bus.kafka.admin import create_topics
from bus.local_broker import LocalBroker, free_port
from bus.settings import KafkaSettings

from .conftest import Service, wait_for
from .kafka_proxy import KafkaProxy
from .test_router_stall import router_mid_burst

pytestmark = pytest.mark.integration

#: How long the router may take to exit once the broker froze: its failed sends' request
#: timeout, then a shutdown that waits for no broker, with room for a loaded machine.
EXIT_WITHIN_S = 60


class CommitTrap:
    """Once armed, holds the router's next offset commit back, and freezes the broker as the next
    produce request reaches it; then lets the commit through. The frozen broker then has a commit
    and a produce request in flight, neither of which it answers until it is thawed.

    A commit that no produce request follows within `PRODUCE_WITHIN_S` (one made while the agent
    waits for it, which leaves nothing in flight) is let through, and the next one held instead.
    """

    PRODUCE_WITHIN_S = 2.0

    def __init__(self) -> None:
        self.broker: LocalBroker | None = None
        self.armed = threading.Event()
        self.sprung = threading.Event()
        self._holding = threading.Event()
        self._lock = threading.Lock()

    def before_request(self, api_key: int) -> None:
        if not self.armed.is_set() or self.sprung.is_set():
            return
        if api_key == OffsetCommitRequest_v2.API_KEY:
            with self._lock:
                if self._holding.is_set():
                    return
                self._holding.set()
            self.sprung.wait(self.PRODUCE_WITHIN_S)  # holds this connection's requests back
            self._holding.clear()
        elif api_key == ProduceRequest_v5.API_KEY and self._holding.is_set():
            with self._lock:
                if not self.sprung.is_set() and self.broker is not None:
                    self.broker.freeze()
                    self.sprung.set()


@pytest.fixture
def trap() -> CommitTrap:
    return CommitTrap()


@pytest.fixture
def broker(tmp_path: Path, trap: CommitTrap) -> Iterator[LocalBroker]:
    """A fresh broker behind a proxy that springs `trap` (every catalog topic created)."""
    b = LocalBroker(advertised_port=free_port(), log_path=tmp_path / "tansu.log")
    assert b.advertised_port is not None
    proxy = KafkaProxy(b.advertised_port, b.port, trap.before_request)
    trap.broker = b
    try:
        b.start()
        asyncio.run(create_topics(KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=b.bootstrap)))
        yield b
    finally:
        b.stop()
        proxy.close()


def test_router_frozen_with_a_commit_in_flight_exits_at_once_and_its_restart_routes_every_event(
        broker: LocalBroker, kafka: KafkaSettings, trap: CommitTrap, spawn: Callable[..., Service]) -> None:
    run = router_mid_burst(kafka, spawn, copies=3000)
    # Armed once the burst's referrals are reaching the broker: the router is in the middle of it.
    trap.armed.set()
    try:
        wait_for(trap.sprung.is_set, 30, "an offset commit and a produce request from the router during the burst")
        frozen_at = time.monotonic()
        rc = run.exit_code(EXIT_WITHIN_S, "the router to exit while the broker is frozen with its commit in flight")
        exited_after = time.monotonic() - frozen_at
    finally:
        broker.thaw()
    run.check_exit_and_recovery(rc, exited_after)
