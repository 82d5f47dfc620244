"""The alerts service when the broker stops answering for longer than the request timeout: its
table writes in flight fail, it commits no alert whose tracked state never reached the broker,
and it exits non-zero; restarted, it tracks every alert."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from bus.kafka.reader import read_all
from bus.local_broker import LocalBroker
from bus.settings import KafkaSettings
from schemas.alerts import PoliceAlert, alert_id_for
from services.alerts.settings import AlertsSettings
from topics.catalog import ALERT_STATES, POLICE_ALERTS

from .alerts_helpers import publish, report, states, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

#: The alerts worker's request timeout here (its session timeout may not exceed it).
REQUEST_TIMEOUT_MS = 4000


def committed_alert_offsets(kafka: KafkaSettings) -> dict[int, int]:
    """The alerts worker's committed offset of each police alert partition."""

    async def go() -> dict[int, int]:
        c = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=AlertsSettings().app_name,
                             enable_auto_commit=False)
        await c.start()
        try:
            return {p: await c.committed(TopicPartition(POLICE_ALERTS.name, p)) or 0
                    for p in range(POLICE_ALERTS.partitions)}
        finally:
            await c.stop()

    return asyncio.run(go())


def test_alerts_worker_stalled_past_its_request_timeout_exits_and_its_restart_tracks_every_alert(
        broker: LocalBroker, kafka: KafkaSettings, spawn: Callable[..., Any]) -> None:
    # The plan's deadlines (hours): nothing is re-sent during the test, only tracked.
    env = {"REFERRAL_BUS_ALERTS_LAG_INTERVAL": "0"}
    stalled_env = {**env, "REFERRAL_BUS_REQUEST_TIMEOUT_MS": str(REQUEST_TIMEOUT_MS),
                   "REFERRAL_BUS_SESSION_TIMEOUT_MS": str(REQUEST_TIMEOUT_MS)}
    # The router routes the whole burst first, so that the broker stalls while the alerts worker
    # alone is busy: tracking each alert is a table write it must not commit past.
    router = spawn("router", env=env)
    burst = [report(jurisdiction=("xian", "yunyang", "honghe")[i % 3]) for i in range(3000)]
    expected = {str(alert_id_for(uuid.UUID(e["event_id"]))) for e in burst}
    publish(kafka, burst)

    def on_topic() -> set[str]:
        return {str(PoliceAlert.model_validate_json(r.value or b"").alert_id)
                for r in asyncio.run(read_all(kafka, [POLICE_ALERTS.name]))}

    wait_until(lambda: expected <= on_topic(), 90, "the router to send every alert")
    router.stop()

    worker = spawn("alerts", env=stalled_env)
    assert worker.process is not None
    # Frozen as soon as it starts tracking, so that its table writes are in flight.
    wait_until(lambda: "tables_restored" in worker.log, 60, "the alerts worker to restore its tables", 0.02)
    broker.freeze()
    # Three request timeouts: table writes in flight when the broker froze fail; writes still
    # waiting in the producer wait for the broker, and so does every commit after them.
    time.sleep(3 * REQUEST_TIMEOUT_MS / 1000)
    broker.thaw()
    thawed_at = time.time()
    # Writes that were in flight failed: the worker exits. Writes that waited go through now.
    wait_until(lambda: worker.process.poll() is not None or expected <= set(states(kafka)), 120,
               "the alerts worker to exit or to track every alert")
    exited = worker.process.poll()

    # Either way, what it committed is tracked: the committed offsets are read first, so every
    # alert below them must have its state on the broker by the time the states are read.
    committed = committed_alert_offsets(kafka)
    tracked = set(states(kafka))
    committed_untracked = [
        (r.partition, r.offset) for r in asyncio.run(read_all(kafka, [POLICE_ALERTS.name]))
        if r.offset < committed[r.partition]
        and str(PoliceAlert.model_validate_json(r.value or b"").alert_id) not in tracked]
    assert committed_untracked == [], "committed past alerts whose tracked state never reached the broker"

    if exited is not None:
        assert exited != 0, worker.log[-3000:]
        worker.start()  # what `restart: unless-stopped` or systemd does
        wait_until(lambda: expected <= set(states(kafka)), 120, "every alert tracked after the restart")
    written = [r.timestamp / 1000 for r in asyncio.run(read_all(kafka, [ALERT_STATES.name]))]
    assert max(written) > thawed_at, "every alert was tracked before the stall: nothing was in flight"
    guarded = "A delivery failed: crashing the worker" in worker.log
    print(f"worker {'exited with code ' + str(exited) if exited is not None else 'waited for the broker'} "
          f"({'delivery guard' if guarded else 'no failed delivery'}); "
          f"{len(tracked & expected)} of {len(expected)} alerts tracked when it had, "
          f"{sum(committed.values())} alert offsets committed")
