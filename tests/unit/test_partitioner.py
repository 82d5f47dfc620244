"""The producers' partitioner puts every key where aiokafka's default (and the Java client) would."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from bus.kafka.partitioner import CachedKeyPartitioner


@given(keys=st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=50),
       partitions=st.integers(min_value=1, max_value=64))
def test_same_partition_as_aiokafka_default(keys: list[bytes], partitions: int) -> None:
    cached = CachedKeyPartitioner(max_keys=8)  # small: the cache also starts over while in use
    all_partitions = list(range(partitions))
    for key in keys + keys:
        assert cached(key, all_partitions, all_partitions) == DefaultPartitioner()(key, all_partitions, all_partitions)


def test_a_key_moves_with_the_partition_count() -> None:
    cached = CachedKeyPartitioner()
    key = b"6f1c0d5e-0000-4000-8000-000000000001"
    assert cached(key, [0, 1, 2, 3], [0, 1, 2, 3]) == DefaultPartitioner()(key, [0, 1, 2, 3], [0, 1, 2, 3])
    assert cached(key, list(range(7)), list(range(7))) == DefaultPartitioner()(key, list(range(7)), list(range(7)))


def test_no_key_goes_to_an_available_partition() -> None:
    assert CachedKeyPartitioner()(None, [0, 1, 2, 3], [2]) == 2
