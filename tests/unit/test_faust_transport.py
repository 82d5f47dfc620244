"""The `tuned://` faust transport: the worker consumer uses the bus's fetch wait, not faust's 1500 ms."""

from __future__ import annotations

from pathlib import Path

from referral_bus.faust_app import make_app
from referral_bus.kafka.faust_transport import ConsumerThread, Transport
from referral_bus.settings import KafkaSettings


async def test_the_worker_consumer_waits_only_as_long_as_configured(tmp_path: Path) -> None:
    kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", fetch_max_wait_ms=7)
    app = make_app("transport-test", kafka, tmp_path)
    assert isinstance(app.transport, Transport)
    consumer = app.consumer
    thread = consumer._thread  # faust builds the aiokafka consumer inside this thread service
    assert isinstance(thread, ConsumerThread)
    aiokafka_consumer = thread._create_worker_consumer(app.transport)
    try:
        assert aiokafka_consumer._fetch_max_wait_ms == 7
    finally:
        await aiokafka_consumer.stop()
