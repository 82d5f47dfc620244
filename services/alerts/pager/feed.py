"""The two decision topics a desk reads, without a consumer group, from where this desk left them.

No consumer group: a group would split the partitions between two desks of one agency, and each
would miss the other's pages. Each desk keeps its own positions (`memory.DeskMemory`), advanced
as each record is handled, so a restarted or reconnected desk goes on from there.

`cases.changes` is read to its end (`bus.kafka.reader.records_to_end`) before the states of each
fetch are decided: topics are not ordered against each other, and a desk that knows a case is
closed shows nothing more about it but what the service kept open after the resolution.

Every call that waits for the broker is bounded by `timeout`: a broker that stops answering (down,
frozen, unreachable) raises `BrokerUnreachable` within it, instead of the client's own retries
for as long as its request timeout, each logging an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from bus.boundary import CASE_CHANGE, TRACKED_STATE, Contract, Refusal
from bus.kafka.clients import consumer as make_consumer
from bus.kafka.reader import records_to_end
from bus.settings import KafkaSettings
from schemas.alerts import CaseChange, TrackedState
from services.alerts.pager.memory import DeskMemory
from topics.catalog import ALERT_STATES, CASES

log = structlog.get_logger("pager")

T = TypeVar("T")
Decision = TrackedState | CaseChange
#: How long an empty fetch of `cases.changes` must stay empty to count as its end (above the fetch wait).
CASES_QUIET_MS = 20


class BrokerUnreachable(Exception):
    """The broker did not answer within the desk's timeout, or refused the connection."""


class DecisionFeed:
    """A groupless consumer over `alerts.states` and `cases.changes`, positioned from a desk's memory."""

    def __init__(self, kafka: KafkaSettings, memory: DeskMemory, *, timeout: float) -> None:
        self.kafka, self.memory, self.timeout = kafka, memory, timeout
        self._consumer: AIOKafkaConsumer | None = None
        self._cases: list[TopicPartition] = []
        self._states: list[TopicPartition] = []

    async def _bounded(self, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, self.timeout)
        except asyncio.CancelledError as exc:
            _reraise_if_cancelled()
            # aiokafka lets the cancellation of one of its own tasks out when a connection drops.
            raise BrokerUnreachable("connection lost") from exc
        except (TimeoutError, KafkaError, OSError) as exc:
            raise BrokerUnreachable(type(exc).__name__) from exc

    async def connect(self) -> None:
        """Start a consumer and put it where the desk left each partition (the start, the first time)."""
        consumer = make_consumer(self.kafka, group_id=None)
        self._consumer = consumer
        await self._bounded(consumer.start())
        await self._bounded(consumer.topics())  # metadata, so partitions_for_topic knows both topics
        self._cases = [TopicPartition(CASES.name, p) for p in sorted(consumer.partitions_for_topic(CASES.name) or ())]
        self._states = [TopicPartition(ALERT_STATES.name, p)
                        for p in sorted(consumer.partitions_for_topic(ALERT_STATES.name) or ())]
        consumer.assign([*self._cases, *self._states])
        for tp in (*self._cases, *self._states):
            done = self.memory.positions(tp.topic)
            if tp.partition in done:
                consumer.seek(tp, done[tp.partition])
            else:
                await self._bounded(consumer.seek_to_beginning(tp))

    async def disconnect(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            # A stop that cannot reach the broker would wait for it, or let out the cancellation of
            # one of aiokafka's tasks; the connections close anyway.
            try:
                await asyncio.wait_for(consumer.stop(), self.timeout)
            except asyncio.CancelledError:
                _reraise_if_cancelled()
            except Exception as exc:
                log.debug("consumer_stop_failed", error=type(exc).__name__)

    async def cases_to_end(self) -> list[ConsumerRecord[bytes, bytes]]:
        """Every case change up to now. It asks the broker for the end offsets, which needs an answer
        (an idle fetch comes back empty whether the broker answers or not): each cycle of a desk
        learns whether the broker is there."""
        assert self._consumer is not None, "connect first"

        async def read() -> list[ConsumerRecord[bytes, bytes]]:
            assert self._consumer is not None
            return [r async for r in records_to_end(self._consumer, self._cases, quiet_ms=CASES_QUIET_MS)]

        return await self._bounded(read())

    async def states(self, wait_ms: int) -> list[ConsumerRecord[bytes, bytes]]:
        """The next fetch of states (empty after `wait_ms` with none)."""
        assert self._consumer is not None, "connect first"
        batches = await self._bounded(self._consumer.getmany(*self._states, timeout_ms=wait_ms, max_records=500))
        return [record for records in batches.values() for record in records]

    def handled(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Remember that `record` is handled: a restart or a reconnection goes on after it."""
        self.memory.advance(record.topic, record.partition, record.offset + 1)


def _reraise_if_cancelled() -> None:
    """Re-raise when the desk itself is being cancelled (Ctrl-C), not only a task of the client."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def decision(record: ConsumerRecord[bytes, bytes]) -> Decision | None:
    """The tracked state or case change a record holds, through the trust boundary (None: a
    tombstone, or not one the service wrote: logged by its reason and position, never its contents)."""
    if record.value is None:
        return None
    contract: Contract[TrackedState] | Contract[CaseChange] = CASE_CHANGE if record.topic == CASES.name \
        else TRACKED_STATE
    value = contract.decode(record.value)
    if isinstance(value, Refusal):
        log.warning("record_refused", topic=record.topic, partition=record.partition, offset=record.offset,
                    reason=value.reason)
        return None
    return value
