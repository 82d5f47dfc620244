"""The producers' partitioner: aiokafka's default, with each key's hash remembered."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.partitioner import DefaultPartitioner, murmur2


class CachedKeyPartitioner:
    """Places a key where aiokafka's `DefaultPartitioner` (and the Java client) would — murmur2 of
    the key, modulo the partition count — but hashes each key once.

    A routed event leaves the router as ~6–9 messages under one or two keys (its event id, its
    case id), and aiokafka's murmur2 is pure Python: hashing every message was ~8 % of the
    router's CPU. The cache is bounded; it starts over when full.
    """

    def __init__(self, max_keys: int = 8192) -> None:
        self._max_keys = max_keys
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._max_keys:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]
