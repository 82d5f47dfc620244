"""One way to build a faust app for every bus service."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faust
from mode import ServiceT

from bus.kafka.clients import PRODUCER_LINGER_MS, PRODUCER_MAX_BATCH_BYTES
from bus.kafka.delivery import DeliveryGuard
from bus.kafka.partitioner import CachedKeyPartitioner
from bus.settings import KafkaSettings
from bus.upstream.faust_sensors import StreamLiveness


class BusApp(faust.App):
    """A faust app that carries the consumer fetch wait for the `tuned://` transport, the guard
    its consumer checks before committing offsets, and the topics its consumer hands to their
    agent a fetched batch at a time (`bus/kafka/batches.py`)."""

    fetch_max_wait_ms: int = 10
    idle_fetch_max_wait_ms: int = 0
    #: Run faust's Kafka consumer in the worker's event loop rather than a thread of its own
    #: (`bus/upstream/faust_worker.py`, LoopConsumerThread).
    consumer_in_worker_loop: bool = False
    #: Fetch in the steady state through `bus/upstream/lean_fetch.py` (aiokafka's round trip
    #: without its task, wait and encoding per request).
    lean_fetch: bool = False
    delivery_guard: DeliveryGuard
    #: Topic name -> the channel of the agent reading it in batches (None until the agent starts).
    batch_readers: dict[str, Any]

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        services = super().on_init_dependencies()
        # faust's Monitor keeps in-process statistics for faust's web views, which are off:
        # the services export their own Prometheus metrics. As a sensor it runs four times per
        # event. It stays the app's `monitor` (faust's consumer reports end offsets to it, and
        # its stuck-stream check reads when each partition's stream last took an event); in its
        # place a sensor that records only that.
        self.sensors.remove(self.monitor)
        self.sensors.add(StreamLiveness(self.monitor))
        return services


def make_app(name: str, kafka: KafkaSettings, state_dir: Path, *, consumer_in_worker_loop: bool = False,
             lean_fetch: bool = False, **conf: Any) -> BusApp:
    """A faust worker app on the bus's broker.

    The session timeout is short because the local broker's group coordinator otherwise keeps a
    new worker waiting ~30 s before its first event; faust's web server is off (each service
    exposes its own /metrics). faust's producer would wait 20 minutes for an unanswering broker;
    the bus's sends fail after its request timeout instead, and a failed send stops the worker
    before it commits past it (`delivery_guard`; README, Failure behaviour).
    `consumer_in_worker_loop`: faust's Kafka consumer runs in the worker's own event loop, not a
    thread (cheaper per fetch; the agents' computing then delays the consumer's requests).
    `lean_fetch`: its steady-state fetches take `bus/upstream/lean_fetch.py`'s short path (about
    half the CPU per round trip; on for the router, whose CPU per event #20 measures; the other
    workers keep aiokafka's own loop until the lean one has been measured on their paths).

    faust reads its own environment variables (BROKER_URL, PRODUCER_ACKS, APP_DATADIR, ...) over
    the values an app is given, so one left in a deployment's environment would move a worker to
    another broker or weaken its acks without a word. The app gets an empty environment: the
    bus's settings (README, Configuration) are its only configuration.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    servers = ";".join(f"tuned://{s}" for s in kafka.bootstrap_servers.split(","))
    app = BusApp(
        name,
        env={},
        broker=servers,
        store="rocksdb://" if conf.pop("rocksdb", False) else "memory://",
        datadir=str(state_dir / name),
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=min(3.0, kafka.session_timeout_ms / 3000),
        broker_request_timeout=kafka.request_timeout_ms / 1000,
        producer_request_timeout=kafka.request_timeout_ms / 1000,
        broker_commit_every=1000,
        broker_commit_interval=0.5,
        producer_acks=-1,
        producer_linger=conf.pop("producer_linger", PRODUCER_LINGER_MS / 1000),
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        producer_partitioner=CachedKeyPartitioner(),
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        **conf,
    )
    app.fetch_max_wait_ms = kafka.fetch_max_wait_ms
    app.consumer_in_worker_loop = consumer_in_worker_loop
    app.lean_fetch = lean_fetch
    app.idle_fetch_max_wait_ms = kafka.idle_fetch_max_wait_ms
    app.delivery_guard = DeliveryGuard()
    app.batch_readers = {}
    return app


#: The interpreter's thread switch interval for faust workers (CPython's default is 5 ms).
#: faust runs its Kafka consumer in a thread of its own; each time that thread has records to
#: hand over it may wait for the GIL while the agents compute, up to a whole interval, on every
#: hop. Measured with benchmarks/router.py's setup: 50 ms cut the router to ~0.6x of 5 ms; 0.5 ms
#: gave 1.3x on a loaded machine and was within the noise (±15 %) of 5 ms on a quiet one.
WORKER_SWITCH_INTERVAL_S = 0.0005


def run_worker(app: faust.App, loglevel: str) -> None:
    """Run `app`'s faust worker in this process until it is stopped (the services' entry points)."""
    sys.setswitchinterval(WORKER_SWITCH_INTERVAL_S)
    # Everything built so far (the compiled rule book, the models' validators, the app) lives as
    # long as the process. Left to the collector, each full collection walks all of it: ~70 ms
    # with the router's ~90,000 objects, a stall every few seconds under load that showed as the
    # alert latency's tail. Frozen, they are never walked again.
    gc.collect()
    gc.freeze()
    worker = faust.Worker(app, loglevel=loglevel, override_logging=False)
    worker.execute_from_commandline()
