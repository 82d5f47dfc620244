"""Fetch answers (versions 4-11) read with `struct`, into the objects aiokafka's decoding makes.

aiokafka decodes an answer by walking its protocol schema field by field in Python: a `BytesIO`
read and a `struct` call per integer, a generator per nested struct, a list per array. For a
Fetch answer that carries records (at 100 events/s two round trips in three bring some) that
walk was a tenth of the fetch's Python (py-spy, `benchmarks.router_cpu --profile`). Here the
same bytes are read in one pass over the buffer; the result is the same response object, with
the same tuples and lists, field for field (the records stay the raw bytes aiokafka hands to
`MemoryRecords`). An answer this reader cannot take (another version, bytes that run short or do
not decode) is left to aiokafka's decoding, which raises what it raises.
"""

from __future__ import annotations

import struct
from typing import Any

from aiokafka.protocol.fetch import (
    FetchResponse_v4,
    FetchResponse_v5,
    FetchResponse_v6,
    FetchResponse_v7,
    FetchResponse_v8,
    FetchResponse_v9,
    FetchResponse_v10,
    FetchResponse_v11,
)

from bus.upstream.registry import NO_ISSUE, workaround

_I16 = struct.Struct(">h").unpack_from
_I32 = struct.Struct(">i").unpack_from
_ABORTED = struct.Struct(">qq").unpack_from
#: throttle time, error code, session id (versions 7 and up).
_ANSWER_HEAD_7 = struct.Struct(">ihi")
#: A partition's fields up to its count of aborted transactions: partition, error code, high
#: watermark, last stable offset, (from version 5) log start offset, count.
_PARTITION_4 = struct.Struct(">ihqqi")
_PARTITION_5 = struct.Struct(">ihqqqi")
#: preferred read replica (version 11), size of the records.
_TAIL_11 = struct.Struct(">ii")

#: Per answer type: (a top-level error code and session id, a log start offset per partition,
#: a preferred read replica per partition).
_LAYOUTS: dict[type, tuple[bool, bool, bool]] = {
    FetchResponse_v4: (False, False, False),
    FetchResponse_v5: (False, True, False),
    FetchResponse_v6: (False, True, False),
    FetchResponse_v7: (True, True, False),
    FetchResponse_v8: (True, True, False),
    FetchResponse_v9: (True, True, False),
    FetchResponse_v10: (True, True, False),
    FetchResponse_v11: (True, True, True),
}

_P = "aiokafka.protocol"


class _Short(Exception):
    """The bytes end before the answer does."""


@workaround(
    relies_on={**{f"{_P}.fetch:{cls.__name__}": fp for cls, fp in (
        (FetchResponse_v4, "7f05632472145a0d"), (FetchResponse_v5, "ef176ac737f39312"),
        (FetchResponse_v6, "489edd5cece6376b"), (FetchResponse_v7, "f8f0756768cd979f"),
        (FetchResponse_v8, "c3344ecd18d74d6c"), (FetchResponse_v9, "d0e9495d10929ba7"),
        (FetchResponse_v10, "ec09ba24f6fbe28a"), (FetchResponse_v11, "66f6416366170bdb"))},
        f"{_P}.struct:Struct.decode": "3dbd422e6aa1934c",
        f"{_P}.struct:Struct.__init__": "5bdf38565cb3063f",
        f"{_P}.types:Schema.decode": "7a78d6fc9150a35b",
        f"{_P}.types:Array.decode": "bba62ae7f0f4d2d7",
        f"{_P}.types:Bytes.decode": "e146bf1143542e01",
        f"{_P}.types:String.decode": "2220d16e643c7922"},
    issue=f"{NO_ISSUE} (a cost, not a bug)",
    recheck="the Fetch answers of versions 4-11 still have these fields in this order (no "
            "tagged fields: not flexible versions), a struct still decodes to `cls(*fields)`, a "
            "nested schema to a tuple, an array to a list (None for length -1), bytes to bytes "
            "(None for a negative length), a string to str (None for length -1).")
def decode_fetch_answer(answer_type: type, body: bytes) -> Any | None:
    """`answer_type.decode(BytesIO(body))` for the Fetch answers of versions 4-11, or None when
    it is another type or the bytes are not a whole answer (aiokafka's decoding then says why)."""
    layout = _LAYOUTS.get(answer_type)
    if layout is None:
        return None
    try:
        return _decode(answer_type, layout, body)
    except (_Short, struct.error, UnicodeDecodeError):
        return None


def _decode(answer_type: type, layout: tuple[bool, bool, bool], body: bytes) -> Any:
    with_session, with_log_start, with_replica = layout
    if with_session:
        throttle, error, session = _ANSWER_HEAD_7.unpack_from(body, 0)
        at = 10
    else:
        (throttle,), at = _I32(body, 0), 4
    (n_topics,) = _I32(body, at)
    at += 4
    topics: list[Any] = []
    head_struct = _PARTITION_5 if with_log_start else _PARTITION_4
    partition_head, head_size = head_struct.unpack_from, head_struct.size
    end = len(body)
    for _ in range(max(n_topics, 0)):
        (name_size,) = _I16(body, at)
        at += 2
        name: str | None = None
        if name_size >= 0:
            if at + name_size > end:
                raise _Short
            name = body[at:at + name_size].decode("utf-8")
            at += name_size
        (n_partitions,) = _I32(body, at)
        at += 4
        partitions: list[Any] = []
        for _ in range(max(n_partitions, 0)):
            head = partition_head(body, at)
            at += head_size
            n_aborted = head[-1]
            aborted: list[Any] = []
            for _ in range(max(n_aborted, 0)):
                aborted.append(_ABORTED(body, at))
                at += 16
            if with_replica:
                replica, size = _TAIL_11.unpack_from(body, at)
                at += 8
            else:
                (size,) = _I32(body, at)
                at += 4
            records: bytes | None = None
            if size >= 0:
                if at + size > end:
                    raise _Short
                records = body[at:at + size]
                at += size
            if with_replica:
                partitions.append((*head[:-1], _array(n_aborted, aborted), replica, records))
            else:
                partitions.append((*head[:-1], _array(n_aborted, aborted), records))
        topics.append((name, _array(n_partitions, partitions)))
    if with_session:
        return answer_type(throttle, error, session, _array(n_topics, topics))
    return answer_type(throttle, _array(n_topics, topics))


def _array(length: int, items: list[Any]) -> list[Any] | None:
    """An array as aiokafka decodes it: None for length -1 (null), else its items."""
    return None if length == -1 else items
