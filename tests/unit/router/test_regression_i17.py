"""Issue #17: one message a sender wrote must never stop the router, nor come back out of it.

Each test is one defect measured on main (10f15e9): the message that made the router raise (and,
read again after every restart, exit 1 forever), or the text it copied into a dead letter, a
receipt, the audit trail or its log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from bus.demo_events import scripted_events
from rules.deadlines import END_OF_TIME, Deadlines
from rules.engine import WrittenReferral, load_rulebook
from schemas.events import Event
from schemas.receipts import AuditRecord, Receipt
from schemas.referrals import DeadLetter
from services.router.agents import Tally
from services.router.handling import Outgoing, Position, Refused, Routed, Router
from services.router.metrics import RouterMetrics
from services.router.outputs import AuditEmitter, ReceiptEmitter, emitters
from topics.catalog import AUDIT, DEAD_LETTERS, RECEIPTS

HERE = Position("events.inbound", 1, 7)
#: The producer's max_request_size (aiokafka's default): a larger dead letter cannot be sent.
PRODUCER_LIMIT = 1_000_000
MARK = "Zq9-sender-text"


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load_rulebook(), Deadlines.load(), (ReceiptEmitter(), AuditEmitter()))


def report(**changes: Any) -> dict[str, Any]:
    event = scripted_events()[0]  # a missing child in 西安
    event.update(changes)
    return event


def encoded(obj: Any) -> bytes:
    # The stdlib encoder, as a careless sender's client would use it: it writes a lone surrogate
    # as the escape "\ud800", which is valid JSON text but no valid Unicode string.
    return json.dumps(obj).encode()


def refused(router: Router, raw: bytes | None) -> Refused:
    outcome = router.handle(raw, HERE)
    assert isinstance(outcome, Refused), outcome
    assert outcome.messages[0].topic == DEAD_LETTERS.name
    return outcome


def test_json_nested_thousands_deep_is_a_dead_letter_not_a_recursion_error(router: Router) -> None:
    for raw in (b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000,
                encoded(report(details={"a": [[[[[[[[[[1]]]]]]]]]]}))):
        assert refused(router, raw).dead_letter.reason == "too_deep"


def test_a_lone_surrogate_in_event_id_is_a_dead_letter_not_a_unicode_encode_error(router: Router) -> None:
    outcome = refused(router, encoded(report(event_id="\ud800")))
    assert outcome.dead_letter.reason == "invalid_json"
    assert [m.topic for m in outcome.messages] == [DEAD_LETTERS.name]  # no receipt for an unreadable id


def test_a_lone_surrogate_in_the_reporter_agency_does_not_break_the_refused_receipt(router: Router) -> None:
    event = report(reporter={"agency": "\udc80police", "role": "parent"}, kind="no_such_kind")
    outcome = refused(router, encoded(event))
    for message in outcome.messages:
        message.value.decode("utf-8")  # everything produced is valid UTF-8


def test_a_750_kb_message_gets_a_dead_letter_the_producer_can_send(router: Router) -> None:
    for size in (750_000, 5_000_000):
        event = report(description="x" * size)
        raw = encoded(event)
        outcome = refused(router, raw)
        (letter_message, *_) = outcome.messages
        assert len(letter_message.value) < 100_000 < PRODUCER_LIMIT
        letter = DeadLetter.model_validate_json(letter_message.value)
        assert letter.reason == "too_large"
        assert letter.original_b64 == ""
        assert letter.original_size == len(raw)
        assert letter.original_sha256 == hashlib.sha256(raw).hexdigest()
        assert raw.startswith(base64.b64decode(letter.original_prefix_b64 or ""))
        assert letter.event_id == event["event_id"]  # named near the start: the reporter can be told


def test_a_small_refused_message_is_kept_whole_for_a_replay(router: Router) -> None:
    raw = encoded(report(jurisdiction="atlantis"))
    letter = refused(router, raw).dead_letter
    assert base64.b64decode(letter.original_b64) == raw
    assert letter.original_prefix_b64 is None and letter.original_size == len(raw)


@pytest.mark.parametrize("where", ["kind", "jurisdiction", "reporter.agency", "key", "event_id", "nested key"])
def test_what_the_sender_wrote_is_not_echoed_in_dead_letters_receipts_audit_or_log(
        router: Router, where: str) -> None:
    event = report()
    if where == "kind":
        event["kind"] = MARK
    elif where == "jurisdiction":
        event["jurisdiction"] = MARK
    elif where == "reporter.agency":
        event["reporter"] = {"agency": MARK, "role": "parent"}
    elif where == "key":
        event[MARK] = 1
    elif where == "event_id":
        event["event_id"] = MARK
    else:
        event["person"] = {**event["person"], MARK: "x"}
    with capture_logs() as logs:
        outcome = refused(router, encoded(event))
        Tally().observe(outcome, RouterMetrics(_registry()), HERE.offset)
    letter = outcome.dead_letter.model_dump_json(exclude={"original_b64"})
    assert MARK not in letter
    for message in outcome.messages[1:]:
        assert MARK not in message.value.decode()
    assert logs and MARK not in json.dumps(logs, default=str)
    if where == "event_id":
        assert outcome.dead_letter.event_id == "sha256:" + hashlib.sha256(MARK.encode()).hexdigest()[:12]
    if where in ("key", "nested key"):
        assert any(e["field"].endswith("sha256:" + hashlib.sha256(MARK.encode()).hexdigest()[:12])
                   for e in outcome.dead_letter.errors)


def test_a_refused_receipt_is_issued_only_for_a_uuid_and_a_known_reporter(router: Router) -> None:
    event = report(kind="no_such_kind", reporter={"agency": "police", "role": "officer"})
    outcome = refused(router, encoded(event))
    receipt = Receipt.model_validate_json(next(m.value for m in outcome.messages if m.topic == RECEIPTS.name))
    assert (receipt.event_id, receipt.reporter_agency, receipt.status) == (event["event_id"], "police", "refused")
    audit = AuditRecord.model_validate_json(next(m.value for m in outcome.messages if m.topic == AUDIT.name))
    assert audit.detail == "invalid_event"
    unknown = refused(router, encoded(report(kind="no_such_kind", reporter={"agency": MARK, "role": "x"})))
    receipt = Receipt.model_validate_json(next(m.value for m in unknown.messages if m.topic == RECEIPTS.name))
    assert receipt.reporter_agency is None  # nobody can read it: an unknown agency is not an agency


def test_standard_json_only(router: Router) -> None:
    huge = encoded(report(details={"n": 1.5})).replace(b"1.5", b"1e999")
    for raw in (b'{"event_id": NaN}', b'{"x": Infinity}', b'[-Infinity]', huge):
        assert refused(router, raw).dead_letter.reason == "invalid_json"


def test_control_and_bidirectional_characters_are_refused_before_the_model(router: Router) -> None:
    for text in ("a\x00b", "\x1b[31mred", "abc\u202edcba", "\x85"):
        letter = refused(router, encoded(report(description=text))).dead_letter
        assert (letter.reason, letter.errors[0]["field"]) == ("invalid_string", "description")


class Exploding:
    """A rule, an emitter, anything in the step that fails on one event (a bug)."""

    def __call__(self, event: Event, referrals: Sequence[WrittenReferral]) -> Sequence[Outgoing]:
        raise ValueError(f"cannot handle description {event.description!r}")


def test_an_unexpected_error_in_the_step_is_one_internal_error_dead_letter_with_ids_only() -> None:
    router = Router(load_rulebook(), Deadlines.load(), (Exploding(),))
    event = report(description=f"the child {MARK} was last seen")
    registry = _registry()
    with capture_logs() as logs:
        outcome = router.handle(encoded(event), HERE)
        assert isinstance(outcome, Refused)
        Tally().observe(outcome, RouterMetrics(registry), HERE.offset)
    letter = outcome.dead_letter
    assert letter.reason == "internal_error"
    assert letter.event_id == event["event_id"]
    assert "ValueError" in letter.errors[0]["reason"]
    assert MARK not in json.dumps(logs, default=str)
    assert MARK not in letter.model_dump_json(exclude={"original_b64"})
    assert any(entry["event"] == "internal_error" and entry["where"].startswith("tests/unit/router/")
               for entry in logs)
    assert registry.get_sample_value("referral_bus_internal_errors_total", {"step": "route"}) == 1
    assert registry.get_sample_value("referral_bus_dead_letters_total", {"reason": "internal_error"}) == 1
    # The router itself still works on the next message.
    assert isinstance(Router(load_rulebook(), Deadlines.load()).handle(encoded(report()), HERE), Routed)


def _registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


def test_an_event_id_in_another_uuid_form_is_shown_canonically(router: Router) -> None:
    upper = str(uuid.uuid4()).upper()
    letter = refused(router, encoded(report(event_id=upper, kind="no_such_kind"))).dead_letter
    assert letter.event_id == upper.lower()


def test_a_padded_kind_is_refused_not_routed_as_a_generic_event(router: Router) -> None:
    # On main a hospital's " child_missing_reported" for a 40-year-old with no last-seen time or
    # place was accepted and raised an immediate police alert.
    event = report(kind=" child_missing_reported", person={"age": 40}, reporter={"agency": "health", "role": "x"})
    del event["last_seen_at"], event["last_seen_location"]
    assert refused(router, encoded(event)).dead_letter.reason == "invalid_event"


def test_a_report_dated_at_the_end_of_time_is_routed_with_deadlines_at_the_end_of_time() -> None:
    """The wire accepts any year up to 9999; a deadline that would fall after it is the last
    instant a timestamp holds, and the step routes the report (it used to end in an internal
    error: the deadline overflowed)."""
    deadlines = Deadlines.load()
    full = Router(load_rulebook(), deadlines, emitters(deadlines))
    late = "9999-12-31T23:59:00+00:00"
    outcome = full.handle(encoded(report(occurred_at=late, reported_at=late, last_seen_at=late)), HERE)
    assert isinstance(outcome, Routed), outcome
    lead = outcome.referrals[0]
    assert lead.ack_by == END_OF_TIME and lead.urgency == "immediate"
    assert all(json.loads(m.value)["schema_version"] for m in outcome.messages)
