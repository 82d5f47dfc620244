"""The lean fetch's memo (`bus/upstream/lean_fetch.py`): an answer recognised by its bytes is what
decoding those bytes gives, and only the last empty answer is recognised."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from aiokafka.protocol.api import ResponseHeader_v0
from aiokafka.protocol.fetch import FetchRequest_v4, FetchResponse_v4

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
