"""faust tables: a changelog partitioned by key, and a restore that writes a table's store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.serializers import codecs

from bus.upstream.registry import NO_ISSUE, workaround


class KeyPartitionedTable(faust.Table):  # type: ignore[type-arg]
    """A table whose changelog partition follows its key (Kafka's murmur2, like every keyed
    producer of the bus), not the partition of the message being processed.

    For tables written while processing topics of different partition counts, where faust's
    default (same partition as the source message) refuses to work; faust's own `use_partitioner`
    asks the producer for topic metadata it may not have yet and fails on the first write.
    """

    @workaround(
        replaces={"faust.tables.table:Table.partition_for_key": "1fcffc344730fe21"},
        relies_on={"faust.tables.table:Table.on_key_set": "9ff71a01455e7600",
                   "faust.tables.table:Table.on_key_del": "efc068c6a2d3cd95"},
        issue=f"{NO_ISSUE} for tables fed by topics of different partition counts (faust's check: "
              "robinhood/faust#137)",
        recheck="faust still asks partition_for_key for the changelog partition of every write "
                "and delete, and sends to the partition it returns.")
    def partition_for_key(self, key: Any) -> int | None:
        """The changelog partition of `key`: murmur2 of the key as text, as the bus's producers place keys."""
        raw = key if isinstance(key, bytes) else str(key).encode()
        return int(murmur2(raw) & 0x7FFFFFFF) % int(self.partitions or 1)

    @workaround(
        replaces={"faust.tables.table:Table._verify_source_topic_partitions": "78526e0b40aa16d9"},
        issue="robinhood/faust#137 (the check that source and changelog partition counts match)",
        recheck="who calls _verify_source_topic_partitions now: if only partition_for_key (replaced "
                "above), this override stays unreached.")
    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        """No check that the source topic has as many partitions as the changelog: the changelog
        is partitioned by key. faust 0.15.3 calls it only from `partition_for_key`, replaced here,
        so this override is a guard against a new caller."""
        return None


@workaround(
    relies_on={"faust.tables.base:Collection.data": "91cfa32a100b8a5c",
               "faust.tables.recovery:Recovery._build_highwaters": "32d70220d2a8a96f"},
    issue="not faust's: the local Tansu broker reports a partition's end offset as the start of its "
          "last batch (tests/integration/test_regression_end_offsets.py), where faust's recovery stops",
    recheck="`table.data` is still the table's store (a mapping whose writes send no changelog), "
            "and recovery still reads each changelog up to the end offsets the consumer reports.")
def overwrite_store(table: faust.Table, latest: Mapping[Any, Any]) -> None:  # type: ignore[type-arg]
    """Make the table's local store hold exactly `latest` (key -> value), without writing to its
    changelog: the latest value per key read from the changelog to its real end, after faust's
    recovery stopped short of it."""
    store = table.data
    for key in [k for k in list(store.keys()) if k not in latest]:
        del store[key]
    for key, value in latest.items():
        store[key] = value


#: A key codec for tables keyed by text: UTF-8, as faust's `raw` writes a str key. Registered by
#: `TextKeys.register()` under this name, for a changelog topic's `key_serializer`.
KEY_CODEC = "bus_text_keys"


class TextKeys(codecs.Codec):
    """UTF-8 keys, undecodable bytes replaced: a changelog key that is not UTF-8 (not one the bus
    wrote) is read with replacement characters instead of failing the table's recovery, where
    faust would stop recovering on it and the worker would wait for ever. The service then
    screens the restored record out (services/alerts/store.py, `screen`).

    faust documents subclassing `Codec` with `_dumps`/`_loads` as the way to add a codec; the
    names are private all the same, so they are fingerprinted here."""

    @classmethod
    def register(cls) -> None:
        codecs.register(KEY_CODEC, cls())

    @workaround(
        replaces={"faust.serializers.codecs:Codec._dumps": "4c721c0711a0d7af"},
        issue=f"{NO_ISSUE} (faust's documented way to write a codec)",
        recheck="Codec.dumps still calls _dumps with the key to encode, and expects bytes.")
    def _dumps(self, s: Any) -> bytes:
        """A str key as its UTF-8 bytes (bytes as they are)."""
        return s.encode() if isinstance(s, str) else bytes(s)

    @workaround(
        replaces={"faust.serializers.codecs:Codec._loads": "5aa11bd559da1f7d"},
        issue=f"{NO_ISSUE} (faust's documented way to write a codec)",
        recheck="Codec.loads still calls _loads with the key's bytes and returns what it returns.")
    def _loads(self, s: bytes) -> Any:
        """The key's text, undecodable bytes replaced (U+FFFD)."""
        return s.decode("utf-8", errors="replace")
