"""The router's outputs on the wire, sent the bus's way (appended to the partitions' batches,
requests written with `struct` by the bus's sender loop) and aiokafka's own way (faust's send per message, aiokafka's
producer): every message on the same topic and partition, in the same order, the same bytes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest.mock import patch

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bus.demo_events import scripted_events
from bus.faust_app import make_app
from bus.kafka.admin import create_topics
from bus.local_broker import LocalBroker, local_broker
from bus.settings import KafkaSettings
from bus.upstream.faust_worker import Producer
from bus.upstream.lean_produce import LeanAIOKafkaProducer, LeanSender, Output, send_outputs
from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from services.router.handling import Position, Router
from services.router.outputs import emitters
from topics.catalog import all_topics

Written = dict[tuple[str, int], list[tuple[bytes | None, bytes | None, list[Any]]]]


def router_outputs() -> list[Sequence[Output]]:
    deadlines = Deadlines.load()
    router = Router(load_rulebook(), deadlines, emitters(deadlines))
    return [router.handle(json.dumps(event).encode(), Position("events.inbound", 0, i)).messages
            for i, event in enumerate(scripted_events() * 3)]


async def produce(kafka: KafkaSettings, workdir: Path, events: list[Sequence[Output]], lean: bool) -> None:
    await create_topics(kafka, all_topics())
    app = make_app("lean-wire-test", kafka, workdir)
    if lean:
        await app.producer.start()
        producer: Any = app.producer
        assert isinstance(producer._producer, LeanAIOKafkaProducer)
    else:
        with patch.object(Producer, "_producer_type", AIOKafkaProducer):
            await app.producer.start()
    try:
        for n, messages in enumerate(events, 1):
            if lean:
                await send_outputs(app, messages)
            else:
                for topic, key, value in messages:
                    await app.producer.send(topic, key, value, None, None, None)
            if n % 2 == 0:  # (the bus's way) two events per request, as under load
                await app.producer.flush()
        await app.producer.flush()
        await app.delivery_guard.settle(timeout=10)
        app.delivery_guard.raise_if_failed()
    finally:
        await app.producer.stop()


async def written(kafka: KafkaSettings, topics: set[str]) -> Written:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(t, p) for t in sorted(topics) for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        out: Written = {}
        while any(position < ends[tp] for tp, position in [(tp, await consumer.position(tp)) for tp in parts]):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                out.setdefault((tp.topic, tp.partition), []).extend(
                    (r.key, r.value, list(r.headers)) for r in records)
        return out
    finally:
        await consumer.stop()


def test_the_routers_outputs_reach_the_same_partitions_in_the_same_order_byte_for_byte(
        broker: LocalBroker, tmp_path: Path) -> None:
    events = router_outputs()
    topics = {topic for messages in events for topic, _, _ in messages}
    lean_kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
    with local_broker(tmp_path / "stock-tansu.log") as stock_broker:
        stock_kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=stock_broker.bootstrap)

        # Per produce request of the bus's producer: written by its sender loop (True), or sent
        # aiokafka's way (False: only while the leader's connection is not up yet).
        ways: list[bool] = []
        write = LeanSender._write_produce_req

        def counted(sender: LeanSender, node_id: int, batches: Any) -> bool:
            ways.append(write(sender, node_id, batches))
            return ways[-1]

        async def go() -> tuple[Written, Written]:
            with patch.object(LeanSender, "_write_produce_req", counted):
                await produce(lean_kafka, tmp_path / "lean", events, lean=True)
            await produce(stock_kafka, tmp_path / "stock", events, lean=False)
            return await written(lean_kafka, topics), await written(stock_kafka, topics)

        lean, stock = asyncio.run(go())
    assert sum(len(records) for records in stock.values()) == sum(len(m) for m in events) > 100
    assert len(stock) > 10  # many partitions
    assert lean == stock
    assert ways.count(True) >= 5 and ways.count(False) <= 1
