"""Keys as the contract says: every message the bus writes is keyed by its topic's rule, so an
outside producer following the document puts a case where the bus does."""

from __future__ import annotations

import json

import pytest
from aiokafka.partitioner import murmur2

from bus.demo_events import INVALID_EVENT, scripted_events
from bus.kafka.partitioner import CachedKeyPartitioner
from rules.deadlines import Deadlines
from rules.engine import load_rulebook
from schemas.contract import published
from services.router.handling import Position, Router
from services.router.outputs import emitters
from topics.catalog import all_topics, key_of, spec_of
from topics.examples import examples

HERE = Position("events.inbound", 1, 5)


def test_everything_the_router_writes_is_keyed_by_its_topics_rule() -> None:
    router = Router(load_rulebook(), Deadlines.load(), emitters(Deadlines.load()))
    raws = [json.dumps(e, ensure_ascii=False).encode() for e in scripted_events()]
    raws += [INVALID_EVENT, b"{not json"]
    topics = set()
    for raw in raws:
        for out in router.handle(raw, HERE).messages:
            rule = spec_of(out.topic).key
            position = f"{HERE.topic}:{HERE.partition}:{HERE.offset}"
            assert out.key == key_of(rule, json.loads(out.value), position), out.topic
            topics.add(out.topic.split(".")[0])
    assert {"referrals", "alerts", "events", "audit"} <= topics


def _keyed_topics() -> list[str]:
    """Topics whose message model has a `key` of its own (the rest are keyed by their writers)."""
    names = {t.name for t in all_topics() if not t.name.startswith("referrals.")} | {"referrals.police"}
    out = []
    for name in sorted(names):
        pub = published().get(spec_of(name).value)
        if pub is not None and pub.model is not None and hasattr(pub.model, "key"):
            out.append(name)
    return out


@pytest.mark.parametrize("topic", _keyed_topics())
def test_a_models_own_key_is_its_topics_rule(topic: str) -> None:
    spec = spec_of(topic)
    pub = published()[spec.value]
    for _, value in examples()[spec.value]:
        assert pub.parse(json.dumps(value, ensure_ascii=False)).key == key_of(spec.key, value)


def test_the_bus_places_a_key_as_murmur2_does() -> None:
    """Kafka's Java default (and librdkafka's murmur2_random): murmur2, positive, modulo."""
    partitioner = CachedKeyPartitioner()
    for n in range(200):
        key = f"6f1c2a4e-8d2b-4c4e-9f61-{n:012d}".encode()
        assert partitioner(key, [0, 1, 2, 3], [0, 1, 2, 3]) == (murmur2(key) & 0x7FFFFFFF) % 4
