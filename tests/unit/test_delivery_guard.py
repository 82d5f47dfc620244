"""The delivery guard across services: no commit passes an output the broker did not acknowledge,
including the writes faust makes in the background (table changelogs) and learns about late."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import pytest
from aiokafka.errors import RequestTimedOutError
from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as faust_aiokafka

from bus.faust_app import make_app
from bus.kafka.delivery import DeliveryFailed, DeliveryGuard
from bus.kafka.faust_transport import Consumer
from bus.settings import KafkaSettings
from services.alerts.tables import FaustSender, KeyedTable, Tables

NOWHERE = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", request_timeout_ms=7000)


def _late_failure(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Future[Any], asyncio.Future[Any]]:
    """(the producer's future, faust's future for the same message): faust learns the outcome in
    a done-callback of the producer's, one turn of the event loop after the flush returned."""
    produced: asyncio.Future[Any] = loop.create_future()
    message: asyncio.Future[Any] = loop.create_future()
    produced.add_done_callback(lambda f: message.set_exception(f.exception() or RuntimeError()))
    return produced, message


def test_every_service_fails_a_send_after_the_bus_request_timeout_not_fausts_20_minutes(tmp_path: Path) -> None:
    app = make_app("guard-test", NOWHERE, tmp_path)
    assert app.conf.producer_request_timeout == 7.0


def test_a_delivery_that_fails_one_callback_after_the_flush_still_stops_the_commit() -> None:
    async def go() -> None:
        guard = DeliveryGuard()
        produced, message = _late_failure(asyncio.get_running_loop())
        guard.track(message)
        produced.set_exception(RequestTimedOutError())  # the flush has returned
        guard.raise_if_failed()  # still in flight as far as faust knows: this alone would pass
        await guard.settle(timeout=1.0)
        with pytest.raises(DeliveryFailed, match="RequestTimedOutError"):
            guard.raise_if_failed()

    asyncio.run(go())


class _CommittingConsumer:
    """What the transport's `_commit` asks of its consumer, up to the guard's verdict."""

    def __init__(self, guard: DeliveryGuard) -> None:
        self.app = SimpleNamespace(delivery_guard=guard, conf=SimpleNamespace(producer_request_timeout=1.0))
        self.log = logging.getLogger("test")
        self.crashed: BaseException | None = None

    async def crash(self, exc: BaseException) -> None:
        self.crashed = exc


def test_the_consumer_crashes_instead_of_committing_past_a_late_failure() -> None:
    async def go() -> None:
        guard = DeliveryGuard()
        produced, message = _late_failure(asyncio.get_running_loop())
        guard.track(message)
        produced.set_exception(RequestTimedOutError())
        consumer: Any = _CommittingConsumer(guard)
        assert await Consumer._commit(consumer, {}) is False
        assert isinstance(consumer.crashed, DeliveryFailed)

    asyncio.run(go())


def _alerts(tmp_path: Path) -> Tables:
    """The alerts service's tables on a faust app of their own."""
    return Tables(make_app("guard-test", NOWHERE, tmp_path))


def _tracked(alerts: Tables) -> KeyedTable:
    """The tracked-states table as faust holds it (the store types it as a mapping)."""
    table = alerts.tracked
    assert isinstance(table, KeyedTable)
    return table


def test_a_table_write_is_watched_from_the_moment_faust_buffers_it(tmp_path: Path) -> None:
    async def go() -> None:
        alerts = _alerts(tmp_path)
        fut = _tracked(alerts).send_changelog(0, "referral-1", b"{}")
        assert alerts.app.delivery_guard.pending == 1
        fut.set_exception(RequestTimedOutError())
        with pytest.raises(DeliveryFailed, match="RequestTimedOutError"):
            alerts.app.delivery_guard.raise_if_failed()

    asyncio.run(go())


class _Broker:
    """Stands in for faust's aiokafka producer below the transport's: each send returns a future
    the test settles (the broker's answer), or raises."""

    def __init__(self, raises: BaseException | None = None) -> None:
        self.deliveries: list[asyncio.Future[Any]] = []
        self.raises = raises

    async def send(self, _producer: Any, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        if self.raises is not None:
            raise self.raises
        self.deliveries.append(asyncio.get_running_loop().create_future())
        return self.deliveries[-1]


def test_every_send_is_watched_until_the_broker_answers_it(tmp_path: Path) -> None:
    async def go() -> None:
        app = make_app("guard-test", NOWHERE, tmp_path)
        broker = _Broker()
        with patch.object(faust_aiokafka.Producer, "send", broker.send):
            await app.producer.send("referrals.police", b"k", b"{}", None, None, None)
            await app.producer.send("referrals.health", b"k", b"{}", None, None, None)
        assert app.delivery_guard.pending == 2
        broker.deliveries[0].set_result(None)
        broker.deliveries[1].set_exception(RequestTimedOutError())
        with pytest.raises(DeliveryFailed, match="RequestTimedOutError"):
            app.delivery_guard.raise_if_failed()

    asyncio.run(go())


def test_a_send_that_raises_fails_the_guard_for_good(tmp_path: Path) -> None:
    async def go() -> None:
        app = make_app("guard-test", NOWHERE, tmp_path)
        with (patch.object(faust_aiokafka.Producer, "send", _Broker(raises=ProducerSendError("no room")).send),
              pytest.raises(ProducerSendError)):
            await app.producer.send("referrals.police", b"k", b"{}", None, None, None)
        for _ in range(2):
            with pytest.raises(DeliveryFailed, match="no room"):
                app.delivery_guard.raise_if_failed()

    asyncio.run(go())


def test_a_table_write_is_watched_once_faust_hands_it_to_the_producer(tmp_path: Path) -> None:
    # faust hands every buffered write to the producer when it flushes, before each commit, and
    # the commit then checks the guard.
    async def go() -> None:
        alerts = _alerts(tmp_path)
        app: Any = alerts.app

        async def started_producer() -> Any:
            return app.producer

        app.maybe_start_producer = started_producer
        broker = _Broker()
        write = _tracked(alerts).send_changelog(0, "referral-1", b"{}")
        assert app.delivery_guard.pending == 1  # the buffered write (the table's own watch)
        with patch.object(faust_aiokafka.Producer, "send", broker.send):
            await write.message.channel.publish_message(write, wait=False)  # what the flush does
        assert app.delivery_guard.pending == 2  # and its send
        broker.deliveries[0].set_exception(RequestTimedOutError())
        await asyncio.sleep(0)  # faust's own future for the write learns it one callback later
        with pytest.raises(DeliveryFailed, match="RequestTimedOutError"):
            app.delivery_guard.raise_if_failed()
        assert isinstance(write.exception(), RequestTimedOutError)

    asyncio.run(go())


class _FailingTopic:
    async def send(self, **_: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_exception(RequestTimedOutError())
        return fut


def test_an_escalation_the_broker_never_acknowledged_fails_the_guard_for_good(tmp_path: Path) -> None:
    async def go() -> None:
        app = make_app("guard-test", NOWHERE, tmp_path)
        sender = FaustSender(app, topic_for=lambda name: _FailingTopic())
        with pytest.raises(RequestTimedOutError):
            await sender.send("alerts.escalations", b"k", b"{}")
        for _ in range(2):
            with pytest.raises(DeliveryFailed, match="RequestTimedOutError"):
                app.delivery_guard.raise_if_failed()

    asyncio.run(go())


def test_a_failed_delivery_fails_the_guard_at_once_without_waiting_for_a_check() -> None:
    # A commit in flight can wait for as long as the broker does not answer (aiokafka retries it
    # while the coordinator is unknown): the failure must not wait for the next commit's check.
    async def go() -> None:
        failures: list[DeliveryFailed] = []
        guard = DeliveryGuard(on_failure=failures.append)
        loop = asyncio.get_running_loop()
        delivered, lost, lost_too = loop.create_future(), loop.create_future(), loop.create_future()
        for fut in (delivered, lost, lost_too):
            guard.track(fut)
        delivered.set_result(None)
        await asyncio.sleep(0)
        assert failures == []
        lost.set_exception(RequestTimedOutError())
        lost_too.cancel()
        await asyncio.sleep(0)  # the futures' callbacks have run; nothing has checked the guard
        assert len(failures) == 1 and isinstance(failures[0].__cause__, RequestTimedOutError)
        guard.trip(RuntimeError("agent crashed"))
        assert len(failures) == 1  # told once
        with pytest.raises(DeliveryFailed, match="RequestTimedOutError"):
            guard.raise_if_failed()

    asyncio.run(go())


def test_a_send_that_raises_is_told_at_once_too() -> None:
    failures: list[DeliveryFailed] = []
    DeliveryGuard(on_failure=failures.append).trip(ProducerSendError("no room"))
    assert len(failures) == 1 and "no room" in str(failures[0])


def test_the_worker_producer_crashes_the_worker_the_moment_a_watched_delivery_fails(tmp_path: Path) -> None:
    async def go() -> None:
        app = make_app("guard-test", NOWHERE, tmp_path)
        crashed: list[BaseException] = []

        async def crash(reason: BaseException) -> None:
            crashed.append(reason)

        async def started(_producer: Any) -> None:  # faust's start, without a broker
            return None

        broker = _Broker()
        with (patch.object(faust_aiokafka.Producer, "on_start", started),
              patch.object(faust_aiokafka.Producer, "send", broker.send),
              patch.object(app, "crash", crash)):
            producer: Any = app.producer  # the bus's Producer (faust types it as its ProducerT)
            await producer.on_start()
            await app.producer.send("referrals.police", b"k", b"{}", None, None, None)
            broker.deliveries[0].set_exception(RequestTimedOutError())
            for _ in range(3):  # the future's callback, then the crash's task
                await asyncio.sleep(0)
        assert len(crashed) == 1 and isinstance(crashed[0], DeliveryFailed)

    asyncio.run(go())
