"""A worker's outputs appended straight to aiokafka's produce batches, watched a batch at a time.

Each message an agent sends through faust goes down three layers of coroutines (the bus's
`Producer.send`, faust's, aiokafka's `send` and its accumulator's `add_message`), and gets a
future of its own, resolved with a `RecordMetadata` when its batch is acknowledged, which the
delivery guard then holds and checks. A routed event is ~10 such messages to ~7 partitions, so
most of that is paid ten times per event for what one future per partition batch says as well:
a batch is acknowledged or fails as a whole (aiokafka resolves every message's future from its
batch's outcome).

`send_outputs` appends the messages, in order, to the open batch of their partition in aiokafka's
accumulator, where `AIOKafkaProducer.send` would have put them, and has the delivery guard watch
each batch's own future once. Whatever it cannot settle at once goes the usual way, through the
worker's producer (`app.producer.send`), in order: a topic without metadata yet, a full batch
(which must wait for the sender to drain it), a producer not started, closed or failed, a
transactional or idempotent one, and any message aiokafka would refuse (too large), so that every
failure is raised, and trips the guard, exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.structs import TopicPartition

from bus.upstream.registry import NO_ISSUE, workaround

_PRODUCER = "aiokafka.producer.producer:AIOKafkaProducer"
_ACCUMULATOR = "aiokafka.producer.message_accumulator"

#: (topic, key, value): what an agent's output is (`services.router.handling.Outgoing`).
Output = tuple[str, bytes | None, bytes | None]


async def send_outputs(app: Any, messages: Sequence[Output]) -> None:
    """Send `messages` in order with the worker's producer, every delivery watched by the app's
    delivery guard, without waiting for the broker (as `app.producer.send` for each)."""
    done, n = 0, len(messages)
    while done < n:
        done += append_outputs(app, messages, done)
        if done < n:
            topic, key, value = messages[done]
            await app.producer.send(topic, key, value, None, None, None)
            done += 1


#: The last batch future the guard was given per partition, per producer (`append_outputs`).
_WATCHED = "lean_watched"
#: Per topic: its partitions' metadata as last seen, and the partitioner's two lists for them.
_PLACED = "lean_placed"


@workaround(
    relies_on={f"{_PRODUCER}.send": "ec0d5784d9f39383",
               f"{_PRODUCER}._serialize": "32a47968b52ac289",
               f"{_PRODUCER}._partition": "94cd5b19c6f27cfb",
               "aiokafka.cluster:ClusterMetadata.partitions_for_topic": "f25109bebe5179dd",
               "aiokafka.cluster:ClusterMetadata.available_partitions_for_topic": "d073f215e6745878",
               "aiokafka.cluster:ClusterMetadata.update_metadata": "ff38b965aeeb6301",
               f"{_ACCUMULATOR}:MessageAccumulator.add_message": "2f8ee718e1d7bb00",
               f"{_ACCUMULATOR}:MessageAccumulator._append_batch": "edfa9c58877ae4d7",
               f"{_ACCUMULATOR}:MessageAccumulator.drain_by_nodes": "cc2f3eafe1e19ba6",
               f"{_ACCUMULATOR}:MessageBatch.done": "3593c71c89aa6da9",
               f"{_ACCUMULATOR}:MessageBatch.failure": "1a80d3cc49a2052e",
               f"{_ACCUMULATOR}:BatchBuilder.append": "65992902ef83c7cb",
               "faust.transport.drivers.aiokafka:Producer.send": "72f84e7a1b56328e"},
    issue=f"{NO_ISSUE} (a cost, not a bug: aiokafka has no call that appends several records with "
          "one future; its batch API (`send_batch`) waits for a partition's pending batch to drain)",
    recheck="AIOKafkaProducer.send still only waits for metadata, serialises (refusing a record over "
            "max_request_size), partitions with `_partition` (the partitioner given list(all "
            "partitions) and list(those with a leader) of the cluster's `_partitions`, which a "
            "metadata update replaces whole, never a topic's dict in place), and calls add_message; "
            "add_message "
            "still appends to the last batch of `_batches[tp]` or a new one from `_append_batch` "
            "(which wakes the sender), refuses when the accumulator is closed or failed, and waits "
            "only when the batch is full (append returns None); a MessageBatch still resolves or "
            "fails its own `future` whenever it resolves or fails its messages' futures (done, "
            "failure, done_noack) and is only ever delivered whole; faust's Producer.send still "
            "adds nothing for a message without headers, partition or timestamp but the "
            "on_produce_message signal (only faust's livecheck listens; the bus does not use it).")
def append_outputs(app: Any, messages: Sequence[Output], start: int = 0) -> int:
    """Append `messages[start:]` in order to the open produce batch of each one's partition, as
    `AIOKafkaProducer.send` would, each batch's future watched once by the delivery guard; stop
    at the first message that the usual path must take (see the module's docstring). Returns how
    many were appended. Never waits, never raises for a message it leaves to the usual path."""
    producer = app.producer
    aio = getattr(producer, "_producer", None)
    if aio is None:
        return 0
    accumulator = aio._message_accumulator
    if accumulator._closed or accumulator._exception is not None or accumulator._txn_manager is not None:
        return 0
    watched: dict[TopicPartition, Any] | None = getattr(producer, _WATCHED, None)
    if watched is None:
        watched = {}
        setattr(producer, _WATCHED, watched)
    track = app.delivery_guard.track
    topics = aio._metadata._partitions  # replaced whole by each metadata update
    placed: dict[str, tuple[Any, list[int], list[int]]] | None = getattr(producer, _PLACED, None)
    if placed is None:
        placed = {}
        setattr(producer, _PLACED, placed)
    partitioner = aio._partitioner
    batches = accumulator._batches
    for i in range(start, len(messages)):
        topic, key, value = messages[i]
        partitions = topics.get(topic)
        if not partitions:
            return i - start
        known = placed.get(topic)
        if known is None or known[0] is not partitions:
            # `AIOKafkaProducer._partition`'s lists, made once per topic and metadata update.
            known = placed[topic] = (partitions, list(set(partitions)),
                                     list({p for p, meta in partitions.items() if meta.leader != -1}))
        try:
            key_bytes, value_bytes = aio._serialize(key, value, [])
            tp = TopicPartition(topic, partitioner(key_bytes, known[1], known[2]))
        except Exception:  # the usual path raises it, and trips the guard
            return i - start
        pending = batches.get(tp)
        batch = pending[-1] if pending else accumulator._append_batch(accumulator.create_builder(), tp)
        if batch._builder.append(timestamp=None, key=key_bytes, value=value_bytes, headers=[]) is None:
            return i - start  # full: the usual path waits for the sender to drain it
        future = batch.future
        if watched.get(tp) is not future:
            watched[tp] = future
            track(future)
    return len(messages) - start
