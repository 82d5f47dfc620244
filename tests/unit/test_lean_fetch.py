"""The lean fetch's memo (`bus/upstream/lean_fetch.py`): an answer recognised by its bytes is what
decoding those bytes gives, and only the last empty answer is recognised; its requests' frames are
aiokafka's; its answers read with `struct` (`bus/upstream/fetch_answers.py`) are aiokafka's."""

from __future__ import annotations

import contextlib
import io
from types import SimpleNamespace
from typing import Any

from aiokafka.protocol.api import ResponseHeader_v0
from aiokafka.protocol.fetch import (
    FetchRequest_v4,
    FetchResponse_v3,
    FetchResponse_v4,
    FetchResponse_v5,
    FetchResponse_v6,
    FetchResponse_v7,
    FetchResponse_v8,
    FetchResponse_v9,
    FetchResponse_v10,
    FetchResponse_v11,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.upstream.fetch_answers import decode_fetch_answer
from bus.upstream.lean_fetch import LeanFetch, LeanFetchRequest, _AnswerReader, _encode


def _answer(highwater: int, records: bytes = b"", error: int = 0) -> bytes:
    body: bytes = FetchResponse_v4(0, [("events.inbound", [(0, error, highwater, highwater, [], records),
                                                          (1, 0, 3, 3, [], b"")])]).encode()
    return body


def _lean() -> LeanFetch:
    fetcher = SimpleNamespace(_loop=None, _client=None)  # decoding needs neither
    return LeanFetch(fetcher)


def _decode(lean: LeanFetch, body: bytes) -> Any:
    reader = _AnswerReader(lean, FetchRequest_v4(-1, 10, 1, 1, 0, []))
    return reader.RESPONSE_TYPE.decode(io.BytesIO(body))


def test_an_empty_answer_seen_again_is_the_same_as_its_fresh_decoding() -> None:
    lean = _lean()
    first = _decode(lean, _answer(5))
    again = _decode(lean, _answer(5))
    assert again == FetchResponse_v4.decode(io.BytesIO(_answer(5))) == first
    assert (lean.decoded, lean.reused) == (1, 1)


def test_an_answer_with_other_bytes_is_decoded_afresh() -> None:
    lean = _lean()
    _decode(lean, _answer(5))
    moved = _decode(lean, _answer(6))  # a high watermark moved: other bytes
    assert moved == FetchResponse_v4.decode(io.BytesIO(_answer(6)))
    assert moved.topics[0][1][0][2] == 6
    with_records = _decode(lean, _answer(6, records=b"\x00" * 20))
    assert with_records.topics[0][1][0][-1] == b"\x00" * 20
    errored = _decode(lean, _answer(6, error=1))
    assert errored.topics[0][1][0][1] == 1
    # Neither an answer with records nor one with an error is kept as the empty answer.
    assert _decode(lean, _answer(6, error=1)) == errored
    assert (lean.decoded, lean.reused) == (5, 0)


def test_the_answer_header_is_parsed_as_aiokafka_parses_it() -> None:
    reader = _AnswerReader(_lean(), FetchRequest_v4(-1, 10, 1, 1, 0, []))
    header = ResponseHeader_v0(123456).encode()
    assert reader.parse_response_header(io.BytesIO(header)).correlation_id == 123456 == \
        ResponseHeader_v0.decode(io.BytesIO(header)).correlation_id


def _request(wait: int, offsets: dict[tuple[str, int], int]) -> LeanFetchRequest:
    topics: dict[str, list[tuple[int, int, int]]] = {}
    for (topic, partition), offset in offsets.items():
        topics.setdefault(topic, []).append((partition, offset, 1048576))
    return LeanFetchRequest(wait, 1, 52428800, 0, list(topics.items()))


def test_a_request_sent_again_with_other_offsets_is_the_frame_aiokafka_would_encode() -> None:
    lean = _lean()
    for versions in ({1: (0, 4)}, {1: (0, 11)}):  # the partition layout of v4 and of v9+
        conn = SimpleNamespace(_versions=versions, _client_id="referral-router")
        for offsets in ({("a", 0): 0, ("a", 1): 0, ("b", 3): 0},
                        {("a", 0): 7, ("a", 1): 0, ("b", 3): 2**40},
                        {("a", 0): 8, ("a", 1): 1, ("b", 3): 2**40 + 1},
                        {("a", 1): 1, ("a", 0): 8, ("b", 3): 5},  # another order: another layout
                        {("a", 0): 9}):
            for wait in (10, 100):
                request = _request(wait, offsets)
                struct_sent, frame = lean.frame(conn, request)
                expected_struct, expected = _encode(conn, request)
                assert bytes(frame) == bytes(expected)
                assert struct_sent.API_VERSION == expected_struct.API_VERSION


# ---- fetch answers read with struct (`bus/upstream/fetch_answers.py`) ----------------------------

_ANSWER_TYPES = [FetchResponse_v4, FetchResponse_v5, FetchResponse_v6, FetchResponse_v7, FetchResponse_v8,
                 FetchResponse_v9, FetchResponse_v10, FetchResponse_v11]

_i32 = st.integers(-(2**31), 2**31 - 1)
_i64 = st.integers(-(2**63), 2**63 - 1)
_aborted = st.one_of(st.none(), st.lists(st.tuples(_i64, _i64), max_size=3))
_records = st.one_of(st.none(), st.binary(max_size=300))


def _partition(version: int) -> st.SearchStrategy[tuple[Any, ...]]:
    head = (_i32, st.integers(-(2**15), 2**15 - 1), _i64, _i64)
    if version >= 11:
        return st.tuples(*head, _i64, _aborted, _i32, _records)
    if version >= 5:
        return st.tuples(*head, _i64, _aborted, _records)
    return st.tuples(*head, _aborted, _records)


@st.composite
def _answers(draw: st.DrawFn) -> tuple[Any, bytes]:
    answer_type = draw(st.sampled_from(_ANSWER_TYPES))
    version = answer_type.API_VERSION
    topics = draw(st.one_of(st.none(), st.lists(st.tuples(
        st.one_of(st.none(), st.text(max_size=20)),
        st.one_of(st.none(), st.lists(_partition(version), max_size=4))), max_size=3)))
    throttle = draw(_i32)
    fields = (throttle, topics) if version < 7 else (throttle, draw(st.integers(-(2**15), 2**15 - 1)), draw(_i32),
                                                     topics)
    return answer_type, answer_type(*fields).encode()


def _as_aiokafka_reads(answer: Any) -> dict[str, Any]:
    """Every field of a decoded answer, with the types of its values (a list is not a tuple)."""
    def typed(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return (type(value).__name__, [typed(v) for v in value])
        return (type(value).__name__, value)
    return {name: typed(value) for name, value in vars(answer).items()}


@given(_answers())
@settings(max_examples=300, deadline=None)
def test_a_fetch_answer_read_with_struct_is_what_aiokafka_decodes(case: tuple[Any, bytes]) -> None:
    answer_type, body = case
    ours = decode_fetch_answer(answer_type, body)
    theirs = answer_type.decode(io.BytesIO(body))
    assert type(ours) is answer_type
    assert ours == theirs
    assert _as_aiokafka_reads(ours) == _as_aiokafka_reads(theirs)


@given(_answers(), st.data())
@settings(max_examples=200, deadline=None)
def test_a_cut_short_answer_is_left_to_aiokafka(case: tuple[Any, bytes], data: st.DataObject) -> None:
    answer_type, body = case
    cut = body[:data.draw(st.integers(0, len(body) - 1))]
    assert decode_fetch_answer(answer_type, cut) is None
    # aiokafka reads what it can; a cut inside a length-prefixed field raises, at the end of a
    # whole field it does not: either way, its own decoding, not ours, says what the bytes are.
    with contextlib.suppress(ValueError):
        answer_type.decode(io.BytesIO(cut))


def test_other_answers_are_left_to_aiokafka() -> None:
    body = FetchResponse_v3(0, [("t", [(0, 0, 5, b"")])]).encode()
    assert decode_fetch_answer(FetchResponse_v3, body) is None
    bad_name = FetchResponse_v4(0, [("t", [])]).encode().replace(b"\x00\x01t", b"\x00\x01\xff")
    assert decode_fetch_answer(FetchResponse_v4, bad_name) is None


def test_the_lean_fetch_decodes_answers_with_records_with_struct() -> None:
    lean = _lean()
    with_records = _decode(lean, _answer(6, records=b"\x01" * 40))
    assert with_records == FetchResponse_v4.decode(io.BytesIO(_answer(6, records=b"\x01" * 40)))
    assert lean.fast_decoded == 1
