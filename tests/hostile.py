"""What a hostile or careless sender writes: a corpus by class, and hypothesis strategies.

Used by the property tests (tests/unit/test_boundary_properties.py), the integration test on the
real broker (tests/integration/test_hostile_corpus.py) and benchmarks/fuzz.py. Every string a
sender chooses here carries `MARK`, so that a test can look for it in what comes back out.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import uuid
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

MARK = "Zq9mark"
HOSPITAL = "health.designated_medical_institution"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def missing_child(event_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """A valid missing-child report from the public (a parent), 西安."""
    now = _now()
    event: dict[str, Any] = {
        "event_id": event_id or str(uuid.uuid4()), "kind": "child_missing_reported", "jurisdiction": "xian",
        "occurred_at": (now - dt.timedelta(minutes=40)).isoformat(), "reported_at": now.isoformat(),
        "reporter": {"agency": None, "role": "parent_or_guardian"},
        "person": {"age": 5, "sex": "male", "nationality": "CN", "name": "张小明"},
        "last_seen_at": (now - dt.timedelta(minutes=40)).isoformat(),
        "last_seen_location": {"place": "钟楼", "lat": 34.2612, "lon": 108.9423},
        "description": "Child last seen at the square with his grandmother.",
    }
    event.update(changes)
    return event


def hospital_report(**changes: Any) -> dict[str, Any]:
    """A valid mandatory report from a hospital (云阳)."""
    now = _now()
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "kind": "medical_staff_suspects_trafficking", "jurisdiction": "yunyang",
        "occurred_at": (now - dt.timedelta(hours=1)).isoformat(), "reported_at": now.isoformat(),
        "reporter": {"agency": HOSPITAL, "role": "medical_staff"},
        "person": {"age": 0, "sex": "female", "nationality": "CN"},
        "description": "Newborn brought in without a birth certificate.",
    }
    event.update(changes)
    return event


def release(case_id: str, agency: str | None = "police.command_center", **changes: Any) -> dict[str, Any]:
    now = _now()
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "kind": "missing_child_info_release", "jurisdiction": "xian",
        "occurred_at": now.isoformat(), "reported_at": now.isoformat(),
        "reporter": {"agency": agency, "role": "police_officer"}, "case_id": case_id,
        "guardian_consent": True, "public_contact": "029-110-0000",
    }
    event.update(changes)
    return event


def sniffed(raw: bytes | None, name: str) -> str | None:
    """The string at `name` in a message if it is a JSON object holding one, else None; never raises
    (what a test or benchmark needs to key or account for a hostile message it sends)."""
    try:
        found = json.loads(raw or b"").get(name)
    except (ValueError, AttributeError, RecursionError):
        return None
    return found if isinstance(found, str) else None


def dumps(obj: Any) -> bytes:
    """As a careless client's stdlib encoder writes it (lone surrogates become escapes)."""
    return json.dumps(obj).encode()


def _deep(n: int, opener: bytes, closer: bytes, inner: bytes = b"1") -> bytes:
    return opener * n + inner + closer * n


def inbound_corpus() -> list[tuple[str, bytes | None]]:
    """(class, message) for `events.inbound`: one of each way to break the router on main, and more."""
    m = MARK
    uid = str(uuid.uuid4())
    corpus: list[tuple[str, bytes | None]] = [
        ("deep_array", _deep(5000, b"[", b"]")),
        ("deep_object", _deep(3000, b'{"a":', b"}")),
        ("deep_in_details", dumps(missing_child(details={"a": [[[[[[[[[[[1]]]]]]]]]]]}))),
        ("surrogate_event_id", dumps(missing_child(event_id="\ud800"))),
        ("surrogate_reporter_agency", dumps(missing_child(kind="no_such_kind",
                                                          reporter={"agency": "\udc80police", "role": "x"}))),
        ("surrogate_key", dumps({**missing_child(), "\ud83d": 1})),
        ("surrogate_raw_bytes", dumps(missing_child()).replace(b"Child last", b"\xed\xa0\x80Child last")),
        ("oversize_750kb", dumps(missing_child(description="x" * 750_000))),
        ("oversize_2mb_keys", dumps({f"k{i}{m}": i for i in range(120_000)})),
        ("nan", dumps(missing_child()).replace(b"34.2612", b"NaN")),
        ("infinity", dumps(missing_child()).replace(b"34.2612", b"Infinity")),
        ("huge_exponent", dumps(missing_child()).replace(b"34.2612", b"1e999")),
        ("huge_integer", dumps(missing_child()).replace(b'"age": 5', b'"age": ' + b"9" * 5000)),
        ("control_char", dumps(missing_child(description=f"{m}\x00\x07"))),
        ("ansi_escape", dumps(missing_child(description=f"\x1b[31m{m}\x1b[0m"))),
        ("bidi_override", dumps(missing_child(reporter={"agency": None, "role": f"\u202e{m}"}))),
        ("crlf_in_text", dumps(missing_child(description=f"line\r\nX-Injected: {m}"))),
        ("overlong_string", dumps(missing_child(description=m * 2000))),
        ("overlong_key", dumps({**missing_child(), m * 20: 1})),
        ("non_uuid_event_id", dumps(missing_child(event_id=f"{m}-not-a-uuid"))),
        ("unknown_kind", dumps(missing_child(kind=f"{m}_kind"))),
        ("unknown_jurisdiction", dumps(missing_child(jurisdiction=f"{m} (known: xian)"))),
        ("unknown_agency", dumps(missing_child(reporter={"agency": f"police.{m}", "role": "x"}))),
        ("extra_keys", dumps({**missing_child(), f"{m}_extra": "x", "person": {"age": 5, m: "y"}})),
        ("many_errors", dumps({**hospital_report(), **{f"e{i}{m}": i for i in range(1500)}})),
        ("kind_is_a_list", dumps(missing_child(kind=[m]))),
        ("kind_is_an_object", dumps(missing_child(kind={m: 1}))),
        ("padded_kind_adult", dumps(hospital_report(kind=" child_missing_reported",
                                                    person={"age": 40}, description=m))),
        ("reported_before_occurred", dumps(missing_child(occurred_at="2030-01-01T00:00:00+00:00"))),
        ("datetime_garbage", dumps(missing_child(occurred_at=f"{m}T25:61"))),
        ("wrong_case_id", dumps(missing_child(case_id=f"{m}-0000"))),
        ("array_body", dumps([missing_child()])),
        ("string_body", dumps(m)),
        ("number_body", b"42"),
        ("null_body", b"null"),
        ("empty_bytes", b""),
        ("no_value", None),
        ("whitespace", b" \n\t "),
        ("bom_prefixed", b"\xef\xbb\xbf" + dumps(missing_child())),
        ("utf16", json.dumps(missing_child()).encode("utf-16")),
        ("gzip", gzip.compress(dumps(missing_child()))),
        ("random_bytes", random.Random(17).randbytes(512)),
        ("truncated", dumps(missing_child())[:-20]),
        ("duplicate_keys", dumps(missing_child())[:-1] + b', "kind": "' + m.encode() + b'"}'),
        ("huge_array", dumps(missing_child(details={"n": 1, "list": [0] * 20_000}))),
        ("release_not_police", dumps(release(uid, agency=HOSPITAL, public_contact=m))),
        ("release_no_consent", dumps(release(uid, guardian_consent=False))),
        ("resolution_not_police", dumps({**release(uid, agency=None), "kind": "case_resolved",
                                         "outcome": "found_alive", "guardian_consent": None})),
    ]
    return corpus


def referral_corpus(agency: str) -> list[tuple[str, bytes | None]]:
    """(class, message) for `referrals.<agency>`, which only the router and alerts should write."""
    m = MARK
    return [
        ("garbage", b"\x00\xff" + m.encode()),
        ("deep", _deep(4000, b"[", b"]")),
        ("not_a_referral", dumps({"referral_id": m, m: 1})),
        ("surrogate", dumps({"referral_id": str(uuid.uuid4()), "agency": "\ud800"})),
        ("oversize", dumps({"subject": m * 100_000})),
        ("nan", b'{"referral_id": NaN}'),
        ("no_value", None),
    ]


def receipt_corpus() -> list[tuple[str, bytes | None]]:
    m = MARK
    return [
        ("garbage", m.encode()),
        ("deep", _deep(4000, b'{"a":', b"}")),
        ("not_a_receipt", dumps({"event_id": m, "status": "routed"})),
        ("oversize", dumps({"event_id": m * 50_000})),
        ("no_value", None),
    ]


def claims_corpus() -> list[tuple[str, bytes | None]]:
    m = MARK
    return [
        ("garbage", m.encode()),
        ("deep", _deep(4000, b"[", b"]")),
        ("not_a_claim", dumps({"event_id": m, "agency": m, "status": "claimed"})),
        ("no_value", None),
    ]


def answer(referral_id: str, answer: str = "acknowledged", agency: str | None = "police.command_center",
           **changes: Any) -> dict[str, Any]:
    """A well-formed answer (as the console or the intake writes it on the answers topic)."""
    obj: dict[str, Any] = {"response_id": str(uuid.uuid4()), "referral_id": referral_id, "answer": answer,
                           "agency": agency, "responded_at": _now().isoformat()}
    if answer == "rejected":
        obj["reason"] = "not ours"
    if answer == "done":
        obj["note"] = "child found"
    obj.update(changes)
    return obj


#: What became of each class of `answer_corpus`: applied, or refused with this reason.
ANSWER_OUTCOMES: dict[str, str] = {
    "ack_string": "invalid_answer", "ack_bare": "invalid_json", "rejected_without_reason": "invalid_answer",
    "done_without_note": "invalid_answer", "no_agency": "no_agency", "wrong_agency": "not_entitled",
    "backdated_wrong_agency": "not_entitled", "backdated_entitled": "applied", "unknown_id": "unknown_id",
    "oversize_note": "too_large", "surrogate_officer": "invalid_json", "surrogate_raw_bytes": "invalid_json",
    "deep": "too_deep", "nan": "invalid_json", "non_uuid_referral": "invalid_answer",
    "unknown_agency_code": "invalid_answer", "padded_agency_code": "invalid_answer", "extra_field": "invalid_answer",
    "control_in_reason": "invalid_string", "bidi_officer": "invalid_string", "array_body": "invalid_answer",
    "number_body": "invalid_answer", "empty_bytes": "empty_message", "no_value": "empty_message",
    "after_done": "already_final", "no_effect": "no_effect", "overlong_reason": "invalid_answer",
}


def answer_corpus(alert_id: str, lead_id: str, done_id: str) -> list[tuple[str, bytes | None]]:
    """(class, message) for the answers topic, about a tracked alert of the command centre and its
    lead referral, and `done_id` (a referral of the command centre this corpus marks done first)."""
    m = MARK
    ancient = "2020-01-01T00:00:00+00:00"
    corpus: list[tuple[str, bytes | None]] = [
        ("ack_string", b'"ACK"'),
        ("ack_bare", b"ACK"),
        ("rejected_without_reason", dumps({**answer(alert_id, "rejected"), "reason": None})),
        ("done_without_note", dumps({**answer(alert_id, "done"), "note": "  "})),
        ("no_agency", dumps(answer(alert_id, agency=None))),
        ("wrong_agency", dumps(answer(lead_id, "accepted", agency="youth_league"))),
        ("backdated_wrong_agency", dumps(answer(lead_id, "accepted", agency="youth_league", responded_at=ancient))),
        ("backdated_entitled", dumps(answer(alert_id, responded_at=ancient, officer=m))),
        ("unknown_id", dumps(answer(str(uuid.uuid4())))),
        ("oversize_note", dumps(answer(alert_id, "done", note=m * 20_000))),
        ("surrogate_officer", dumps(answer(alert_id, officer="\ud800" + m))),
        ("surrogate_raw_bytes", dumps(answer(alert_id, officer=m)).replace(m.encode(), b"\xed\xa0\x80" + m.encode())),
        ("deep", _deep(4000, b'{"a":', b"}")),
        ("nan", dumps(answer(alert_id)).replace(b'"acknowledged"', b"NaN")),
        ("non_uuid_referral", dumps(answer(f"{m}-not-an-id"))),
        ("unknown_agency_code", dumps(answer(alert_id, agency=f"police.{m}"))),
        ("padded_agency_code", dumps(answer(alert_id, agency=" police.command_center"))),
        ("extra_field", dumps({**answer(alert_id), f"{m}_extra": m})),
        ("control_in_reason", dumps(answer(alert_id, "rejected", reason=f"\x1b[31m{m}\x00"))),
        ("bidi_officer", dumps(answer(alert_id, officer=f"\u202e{m}"))),
        ("overlong_reason", dumps(answer(alert_id, "rejected", reason=m * 200))),
        ("array_body", dumps([answer(alert_id)])),
        ("number_body", b"42"),
        ("empty_bytes", b""),
        ("no_value", None),
        # the command centre marks `done_id` done (applied), then answers it again
        ("done_first", dumps(answer(done_id, "done"))),
        ("after_done", dumps(answer(done_id, "accepted"))),
        # accepted (applied), then an acknowledgement that changes nothing
        ("accept_first", dumps(answer(lead_id, "accepted"))),
        ("no_effect", dumps(answer(lead_id, "acknowledged"))),
    ]
    return corpus


# -- hypothesis strategies ---------------------------------------------------------------------------

#: Any text, lone surrogates, controls and bidirectional characters included.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
#: Text a test can find again: MARK at both ends (an echo cut short keeps one of them).
marked_text = any_text.map(lambda s: f"{MARK}{s}{MARK}")

json_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
             | st.floats(allow_nan=True, allow_infinity=True) | any_text | marked_text)
json_values = st.recursive(
    json_leaf,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(any_text | marked_text, children, max_size=5),
    max_leaves=25,
)

_PATHS = ["event_id", "kind", "jurisdiction", "occurred_at", "reported_at", "reporter", "reporter.agency",
          "reporter.role", "person", "person.age", "person.sex", "person.nationality", "person.name", "location",
          "location.lat", "description", "details", "case_id", "last_seen_at", "last_seen_location",
          "last_seen_location.lat", "exercise", "suspicion", "guardian_consent", "public_contact", "outcome"]
_BASES: list[Callable[[], dict[str, Any]]] = [
    missing_child, hospital_report, lambda: release(str(uuid.uuid4())),
    lambda: {**release(str(uuid.uuid4())), "kind": "case_resolved", "outcome": "found_alive"},
]


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event of some kind with a few fields replaced, dropped or added."""
    event: dict[str, Any] = draw(st.sampled_from(_BASES))()
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_PATHS) | (any_text | marked_text))
        head, _, tail = path.partition(".")
        nested = event.get(head)
        target: dict[str, Any] = nested if tail and isinstance(nested, dict) else event
        key = tail or head
        if draw(st.booleans()):
            # Marked text half the time: a wrong code, id or time is what pydantic's messages quote.
            target[key] = draw(marked_text | json_values)
        else:
            target.pop(key, None)
    return event


def _encode(obj: Any, ascii_only: bool, allow_nan: bool) -> bytes:
    try:
        return json.dumps(obj, ensure_ascii=ascii_only, allow_nan=allow_nan).encode("utf-8", "surrogatepass")
    except ValueError:  # NaN refused by the encoder: what the sender wrote is then plain text
        return repr(obj).encode("utf-8", "surrogatepass")


#: Bytes as they arrive on a topic or in a request body.
messages = (
    st.binary(max_size=600)
    | st.builds(_encode, json_values, st.booleans(), st.booleans())
    | st.builds(_encode, mutated_events(), st.booleans(), st.booleans())
    | st.builds(_encode, mutated_events(), st.just(True), st.just(False))
)


def holds_mark(raw: bytes | None) -> bool:
    """Whether a message holds text a test can look for (MARK) in what comes back out."""
    return raw is not None and MARK.encode() in raw
