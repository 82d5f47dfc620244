"""Issue #17 on the real broker: a corpus of hostile messages on every topic the router, the
broadcast service, the delivery reader and the intake read, then a valid missing-child report.

The report is routed and alerted, every service is still running (the alerts service too, which
also reads inbound events; the broadcast service also
after a restart that reads hostile state records), each hostile message is accounted for (a dead
letter at its own position, or routed; counted by each reader's metrics), and nothing a sender
wrote is in any service's log, a dead letter's reasons, a receipt or the audit trail.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka.errors import KafkaError

from bus.boundary import EVENT, REFERRAL, TRACKED_STATE, Refusal
from bus.kafka.clients import producer
from bus.kafka.reader import latest_by_key, read_all
from bus.local_broker import free_port
from bus.settings import KafkaSettings
from schemas.alerts import PoliceAlert, TrackedState, alert_id_for
from schemas.answers import RefusedAnswer
from schemas.notices import RefusalNotice
from schemas.referrals import DeadLetter, Referral
from services.intake.demo import DEMO_TOKENS
from tests.hostile import (
    ANSWER_OUTCOMES,
    HOSPITAL,
    MARK,
    answer_corpus,
    claims_corpus,
    dumps,
    hospital_report,
    inbound_corpus,
    missing_child,
    receipt_corpus,
    referral_corpus,
    sniffed,
)
from tests.integration.conftest import Service, healthy, wait_for
from topics.catalog import (
    ALERT_PARKED,
    ALERT_STATES,
    ANSWERS,
    ANSWERS_REFUSED,
    AUDIT,
    BROADCAST_STATE,
    CASES,
    DEAD_LETTERS,
    ESCALATIONS,
    EVENTS,
    INTAKE_CLAIMS,
    POLICE_ALERTS,
    RECEIPTS,
    gate_answers_topic_name,
    gate_events_topic_name,
    referral_topic_name,
    refusals_topic_name,
)

pytestmark = pytest.mark.integration

COMMAND_CENTRE = "police.command_center"
T = TypeVar("T")


def produce(kafka: KafkaSettings, topic: str, items: Sequence[tuple[str, bytes | None]],
            key: Callable[[int], bytes] = lambda i: f"hostile-{i}".encode()) -> dict[str, tuple[int, int] | None]:
    """Produce each message; {class: (partition, offset)}, or None where the broker refused it."""

    async def go() -> dict[str, tuple[int, int] | None]:
        p = producer(kafka, max_request_size=4 * 1024 * 1024)
        await p.start()
        out: dict[str, tuple[int, int] | None] = {}
        try:
            for i, (name, value) in enumerate(items):
                try:
                    meta = await p.send_and_wait(topic, value=value, key=key(i))
                    out[name] = (meta.partition, meta.offset)
                except KafkaError:
                    out[name] = None
        finally:
            await p.stop()
        return out

    return asyncio.run(go())


def records(kafka: KafkaSettings, topic: str) -> list[Any]:
    return asyncio.run(read_all(kafka, [topic]))


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text of a metrics listener as {(name, labels): value}."""
    out = {}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")))
            out[(match.group(1), labels)] = float(match.group(3))
    return out


def serving(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def total(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in metrics.items() if n == name and all((k, labels[k]) in ls for k in labels))




def test_hostile_messages_on_every_topic_stop_nothing(kafka: KafkaSettings, spawn: Callable[..., Service],
                                                      tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("router", "broadcast", "feed", "intake", "intake_metrics")}
    router = spawn("router", env={"REFERRAL_BUS_ROUTER_METRICS_PORT": str(ports["router"])})
    broadcast = spawn("broadcast", env={"REFERRAL_BUS_BROADCAST_METRICS_PORT": str(ports["broadcast"]),
                                        "REFERRAL_BUS_BROADCAST_HTTP_PORT": str(ports["feed"]),
                                        "REFERRAL_BUS_BROADCAST_HTTP_HOST": "127.0.0.1"})
    intake = spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(ports["intake"]),
                                  "REFERRAL_BUS_INTAKE_METRICS_PORT": str(ports["intake_metrics"])})
    api = f"http://127.0.0.1:{ports['intake']}"
    wait_for(lambda: healthy(api), 30, "the intake")
    wait_for(lambda: healthy(f"http://127.0.0.1:{ports['feed']}"), 60, "the broadcast service")
    # The alerts service also reads events.inbound (it follows cases): it must survive them too.
    alerts = spawn("alerts")
    services = {"router": router, "broadcast": broadcast, "intake": intake, "alerts": alerts}

    # -- the corpus, on every topic these services read ---------------------------------------
    inbound = inbound_corpus()
    at = produce(kafka, EVENTS.name, inbound)
    referrals = referral_corpus(COMMAND_CENTRE)
    produce(kafka, referral_topic_name(COMMAND_CENTRE), referrals)
    produce(kafka, RECEIPTS.name, receipt_corpus())
    produce(kafka, INTAKE_CLAIMS.name, claims_corpus())
    state_corpus = [("not_a_state", dumps({"case_id": MARK})), ("deep", b"[" * 4000), ("garbage", MARK.encode())]
    produce(kafka, BROADCAST_STATE.name, state_corpus,
            key=lambda i: (MARK if i else "\ud800").encode("utf-8", "replace"))
    hostile_requests = [
        ("nan", dumps(hospital_report()).replace(b'"age": 0', b'"age": NaN')),
        ("deep", b"[" * 5000), ("unknown_kind", dumps(hospital_report(kind=MARK))),
        ("surrogate", dumps(hospital_report(description="\ud800"))),
        ("key", dumps({**hospital_report(), MARK: 1})),
    ]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {DEMO_TOKENS[HOSPITAL]}"}
    for name, raw in hostile_requests:
        r = httpx.post(f"{api}/v1/events", content=raw, headers=headers, timeout=10)
        assert r.status_code == 422 and MARK not in r.text, (name, r.text)

    # -- then a valid missing-child report, and a hospital's report through the intake ----------
    report = missing_child(description="Child last seen at the square.")
    produce(kafka, EVENTS.name, [("valid", dumps(report))], key=lambda _: report["event_id"].encode())
    hospital = hospital_report()
    assert httpx.post(f"{api}/v1/events", content=dumps(hospital), headers=headers, timeout=10).status_code == 202

    def routed_and_alerted() -> bool:
        leads = [REFERRAL.decode(r.value) for r in records(kafka, referral_topic_name(COMMAND_CENTRE))]
        alerts = [PoliceAlert.model_validate_json(r.value) for r in records(kafka, POLICE_ALERTS.name)]
        return (any(isinstance(x, Referral) and str(x.event_id) == report["event_id"] for x in leads)
                and any(str(a.event_id) == report["event_id"] for a in alerts))

    wait_for(lambda: _safe(routed_and_alerted), 90, "the valid report's lead referral and police alert")
    receipt = wait_for(lambda: (r := httpx.get(f"{api}/v1/events/{hospital['event_id']}", headers=headers,
                                               timeout=5)).json().get("status") == "routed" and r, 60,
                       "the hospital's routed receipt")
    assert receipt.json()["receipt"]["reporter_agency"] == HOSPITAL

    # The command centre's delivery stream reads past the hostile messages on its topic.
    delivered = _stream(api, COMMAND_CENTRE)
    assert report["event_id"] in {str(r["event_id"]) for r in delivered}

    # -- every hostile inbound message is accounted for -------------------------------------------
    letters = {(d.partition, d.offset): d for d in (DeadLetter.model_validate_json(r.value)
                                                    for r in records(kafka, DEAD_LETTERS.name))
               if d.topic == EVENTS.name}
    routed_ids = {json.loads(r.value)["event_id"] for r in records(kafka, RECEIPTS.name)
                  if r.value and b'"routed"' in r.value}
    unaccounted = []
    for name, sent in inbound:
        position = at[name]
        if position is None:
            continue  # refused by the broker itself: never on the bus
        if position in letters:
            continue
        decoded = EVENT.decode(sent)
        if isinstance(decoded, Refusal) or str(decoded.event_id) not in routed_ids:
            unaccounted.append(name)
    assert not unaccounted, unaccounted
    assert all(letter.reason for letter in letters.values())

    # -- each reader counted what it refused ------------------------------------------------------
    router_metrics = scrape(ports["router"])
    assert total(router_metrics, "referral_bus_dead_letters_total") == len(letters)
    intake_metrics = scrape(ports["intake_metrics"])
    assert total(intake_metrics, "referral_bus_delivery_refused_total") == len(referrals)
    assert total(intake_metrics, "referral_bus_intake_records_refused_total", topic="receipts") == len(receipt_corpus())
    assert total(intake_metrics, "referral_bus_intake_records_refused_total", topic="claims") == len(claims_corpus())
    broadcast_metrics = scrape(ports["broadcast"])
    on_bus = sum(1 for p in at.values() if p is not None) + 2  # and the two valid events
    wait_for(lambda: total(scrape(ports["broadcast"]), "referral_bus_broadcast_inputs_total") >= on_bus, 30,
             "the broadcast service's count of every inbound message")
    assert total(broadcast_metrics, "referral_bus_internal_errors_total") == 0

    # -- every service still runs; the broadcast service also restarts over hostile state ---------
    for name, svc in services.items():
        assert svc.process is not None and svc.process.poll() is None, f"{name} exited:\n{svc.log[-3000:]}"
    broadcast.stop()
    broadcast.start()
    wait_for(lambda: healthy(f"http://127.0.0.1:{ports['feed']}"), 60, "the broadcast service after a restart")
    assert total(scrape(ports["broadcast"]), "referral_bus_internal_errors_total",
                 step="broadcast_restore") == len(state_corpus)

    # -- nothing a sender wrote came back out ------------------------------------------------------
    for name, svc in services.items():
        assert MARK not in svc.log, f"{name}'s log repeats what a sender wrote"
    for letter in letters.values():
        assert MARK not in letter.model_dump_json(exclude={"original_b64", "original_prefix_b64"})
    for topic in (RECEIPTS.name, AUDIT.name):
        for r in records(kafka, topic):
            if not (r.key or b"").startswith(b"hostile-"):  # not the corpus this test wrote there
                assert MARK.encode() not in (r.value or b""), topic


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (ValueError, KafkaError):
        return False


def _stream(api: str, agency: str) -> list[dict[str, Any]]:
    out = []
    with httpx.stream("GET", f"{api}/v1/referrals/stream", params={"idle_exit": 4, "max": 100},
                      headers={"Authorization": f"Bearer {DEMO_TOKENS[agency]}"}, timeout=90) as r:
        assert r.status_code == 200
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "referral":
                out.append(json.loads(line[6:]))
    time.sleep(0.5)  # the reader's last commits and counts
    return out


def test_hostile_messages_on_agencies_own_topics_stop_nothing_and_each_is_accounted_for(
        kafka: KafkaSettings, spawn: Callable[..., Service]) -> None:
    """The intake's gate (issue #18) reads what agencies' systems write on their own topics: the
    inbound corpus on a hospital's events topic and the answers corpus on a command centre's
    answers topic, then a valid report. Each message is admitted (on events.inbound) or refused
    at its own position (a dead letter, a refused answer) with a reason; the intake still runs and
    nothing a sender wrote comes back out."""
    ports = {name: free_port() for name in ("intake", "intake_metrics")}
    intake = spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(ports["intake"]),
                                  "REFERRAL_BUS_INTAKE_METRICS_PORT": str(ports["intake_metrics"]),
                                  "REFERRAL_BUS_INTAKE_GATE_LOOKUP_WAIT_S": "0.2"})
    wait_for(lambda: healthy(f"http://127.0.0.1:{ports['intake']}"), 30, "the intake")
    events_topic, answers_topic = gate_events_topic_name(HOSPITAL), gate_answers_topic_name(COMMAND_CENTRE)
    inbound = inbound_corpus()
    at = produce(kafka, events_topic, inbound)
    answers = answer_corpus(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()))  # ids the bus never knew
    at_answers = produce(kafka, answers_topic, answers)
    valid = hospital_report()
    produce(kafka, events_topic, [("valid", dumps(valid))], key=lambda _: valid["event_id"].encode())

    # One partition, read in order: once the valid report is inbound, every message before it was decided.
    def admitted_ids() -> set[str] | None:
        ids = {json.loads(r.value)["event_id"] for r in records(kafka, EVENTS.name)}
        return ids if valid["event_id"] in ids else None

    inbound_ids = wait_for(lambda: _safe_value(admitted_ids), 120, "the valid report admitted by the gate")
    letters = {(d.partition, d.offset): d for d in (DeadLetter.model_validate_json(r.value)
                                                    for r in records(kafka, DEAD_LETTERS.name))
               if d.topic == events_topic}
    unaccounted = []
    for name, sent in inbound:
        position = at[name]
        if position is None or position in letters:
            continue
        decoded = EVENT.decode(sent)
        if isinstance(decoded, Refusal) or str(decoded.event_id) not in inbound_ids:
            unaccounted.append(name)
    assert not unaccounted, unaccounted
    assert all(letter.reason and letter.service == "intake" for letter in letters.values())
    assert "agency_mismatch" in {letter.reason for letter in letters.values()}  # the corpus has the police's reports

    def answers_decided() -> dict[tuple[int | None, int | None], RefusedAnswer] | None:
        refused = {(r.partition, r.offset): r for r in (RefusedAnswer.model_validate_json(x.value)
                                                        for x in records(kafka, ANSWERS_REFUSED.name))
                   if r.topic == answers_topic}
        wanted = {p for p in at_answers.values() if p is not None}
        return refused if wanted <= set(refused) else None

    refusals = wait_for(lambda: _safe_value(answers_decided), 120, "every hostile answer refused")
    assert records(kafka, ANSWERS.name) == []  # no answer to an id the bus never knew is admitted
    assert all(r.reason for r in refusals.values())

    metrics = scrape(ports["intake_metrics"])
    on_bus = sum(1 for p in at.values() if p is not None) + 1
    assert total(metrics, "referral_bus_intake_gate_total", message="event") == on_bus
    assert total(metrics, "referral_bus_intake_gate_total", message="event", outcome="admitted") >= 1
    assert total(metrics, "referral_bus_internal_errors_total", step="gate") == 0
    assert total(metrics, "referral_bus_intake_gate_total", message="answer") == len(refusals)
    assert intake.process is not None and intake.process.poll() is None, intake.log[-3000:]
    assert MARK not in intake.log
    for letter in letters.values():
        assert MARK not in letter.model_dump_json(exclude={"original_b64", "original_prefix_b64"})
    for refusal in refusals.values():
        assert MARK not in refusal.model_dump_json()

    # Each agency is told of each of its refusals, at the same position, with the same reason,
    # on its own refusals topic; nothing it wrote comes back.
    for agency, recorded in ((HOSPITAL, {p: d.reason for p, d in letters.items()}),
                             (COMMAND_CENTRE, {p: r.reason for p, r in refusals.items()})):
        def told(agency: str = agency, count: int = len(recorded)) -> list[RefusalNotice] | None:
            notices = [RefusalNotice.model_validate_json(r.value) for r in records(kafka, refusals_topic_name(agency))]
            return notices if len(notices) >= count else None

        notices = wait_for(lambda: _safe_value(told), 60, f"{agency}'s notices")
        assert {(n.partition, n.offset): n.reason for n in notices} == recorded, agency
        assert len(notices) == len(recorded)
        assert not any(MARK in n.model_dump_json() for n in notices)


def test_an_agency_whose_messages_are_slow_to_decide_delays_no_other_agency(
        kafka: KafkaSettings, spawn: Callable[..., Service]) -> None:
    """Each gate topic is decided by a task of its own: answers to ids the bus does not know, which
    wait for the states (up to 5 s each here), hold up only the agency that sent them; a hospital's
    report written while they are being refused is admitted before they all are."""
    intake = spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(free_port()),
                                  "REFERRAL_BUS_INTAKE_GATE_LOOKUP_WAIT_S": "5"})
    slow = [(f"unknown-{i}", dumps({"response_id": str(uuid.uuid4()), "referral_id": str(uuid.uuid4()),
                                    "answer": "acknowledged"})) for i in range(12)]
    produce(kafka, gate_answers_topic_name(COMMAND_CENTRE), slow)
    # Once the gate is busy with them (the first refused), the hospital writes its report.
    wait_for(lambda: len(records(kafka, ANSWERS_REFUSED.name)) >= 1, 60, f"the first slow answer\n{intake.log[-2000:]}")
    report = hospital_report()
    produce(kafka, gate_events_topic_name(HOSPITAL), [("report", dumps(report))],
            key=lambda _: report["event_id"].encode())

    def admitted() -> bool:
        return any(json.loads(r.value)["event_id"] == report["event_id"] for r in records(kafka, EVENTS.name))

    wait_for(lambda: _safe_value(admitted), 60, f"the hospital's report admitted\n{intake.log[-2000:]}")
    refused = [r for r in records(kafka, ANSWERS_REFUSED.name)
               if RefusedAnswer.model_validate_json(r.value).topic == gate_answers_topic_name(COMMAND_CENTRE)]
    assert len(refused) < len(slow), "the report waited for the other agency's answers"
    wait_for(lambda: len(records(kafka, ANSWERS_REFUSED.name)) >= len(slow), 120, "every slow answer refused")


def test_hostile_answers_and_records_stop_nothing_and_each_answer_is_accounted_for(
        kafka: KafkaSettings, spawn: Callable[..., Service]) -> None:
    """The answer path of #17: a corpus of hostile answers on the answers topic (not answers at all,
    no agency, an agency not entitled, backdated, an unknown id, oversize, surrogates, a final
    state, …) and hostile records on every other topic the alerts service reads, its own
    changelogs included (read again by a restart). Each answer is applied or refused on
    `answers.refused` with its reason; the valid missing-child report is still alerted; the alerts
    service and the intake (which follows `alerts.states`) still run; nothing a sender wrote
    comes back out."""
    ports = {name: free_port() for name in ("alerts", "intake", "intake_metrics")}
    spawn("router")
    alerts = spawn("alerts", env={"REFERRAL_BUS_ALERTS_METRICS_PORT": str(ports["alerts"]),
                                  "REFERRAL_BUS_ALERTS_PARK_SECONDS": "3", "REFERRAL_BUS_ALERTS_LAG_INTERVAL": "0"})
    intake = spawn("intake", env={"REFERRAL_BUS_INTAKE_PORT": str(ports["intake"]),
                                  "REFERRAL_BUS_INTAKE_METRICS_PORT": str(ports["intake_metrics"])})
    api = f"http://127.0.0.1:{ports['intake']}"
    wait_for(lambda: healthy(api), 30, "the intake")

    # Two missing children's alerts (and the command centre's lead referral of the first) to answer.
    target, finished = missing_child(), missing_child()
    produce(kafka, EVENTS.name, [("target", dumps(target)), ("finished", dumps(finished))],
            key=lambda i: [target, finished][i]["event_id"].encode())
    alert_id = str(alert_id_for(uuid.UUID(target["event_id"])))
    done_id = str(alert_id_for(uuid.UUID(finished["event_id"])))

    def lead_of_target() -> str | None:
        s = _states(kafka)
        tracked = s.get(alert_id)
        lead = tracked.twin_id if tracked is not None else None
        return str(lead) if lead is not None and done_id in s and str(lead) in s else None

    lead_id = wait_for(lambda: _safe_value(lead_of_target), 90, "both alerts and the lead referral tracked")

    # -- the answers corpus, and hostile records on every other topic the alerts service reads --
    corpus = answer_corpus(alert_id, lead_id, done_id)
    # Keyed as the bus's producers key answers (by the id answered), so that those about one id are
    # read in order (`after_done` after `done_first`).
    keys = [(sniffed(raw, "referral_id") or f"hostile-{i}").encode("utf-8", "replace")
            for i, (_, raw) in enumerate(corpus)]
    at = produce(kafka, ANSWERS.name, corpus, key=lambda i: keys[i])
    junk = [("garbage", MARK.encode()), ("deep", b"[" * 4000), ("not_it", dumps({"id": MARK, MARK: 1})),
            ("surrogate", dumps({"alert_id": "\ud800"})), ("no_value", None)]
    for topic in (POLICE_ALERTS.name, ESCALATIONS.name, referral_topic_name(COMMAND_CENTRE)):
        produce(kafka, topic, junk)
    changelogs = (ALERT_STATES.name, CASES.name, ALERT_PARKED.name)
    for topic in changelogs:
        produce(kafka, topic, junk[:-1], key=lambda i: (MARK if i else "\ud800").encode("utf-8", "replace") + b"\xff")

    # -- each answer: applied, or refused with its reason ----------------------------------------
    expected = {name: ANSWER_OUTCOMES.get(name, "applied") for name, _ in corpus}
    ids = {name: sniffed(raw, "response_id") for name, raw in corpus}

    def accounted() -> dict[str, str] | None:
        refused = [RefusedAnswer.model_validate_json(r.value) for r in records(kafka, ANSWERS_REFUSED.name)]
        by_position = {(r.partition, r.offset): r.reason for r in refused if r.topic == ANSWERS.name}
        by_response = {r.response_id: r.reason for r in refused}
        applied = {h.ref for s in _states(kafka).values() for h in s.history if h.ref}
        outcome: dict[str, str] = {}
        for name, _ in corpus:
            position = at[name]
            assert position is not None, name
            if position in by_position:
                outcome[name] = by_position[position]
            elif ids[name] in by_response:
                outcome[name] = by_response[ids[name]]
            elif ids[name] in applied:
                outcome[name] = "applied"
        return outcome if len(outcome) == len(corpus) else None

    try:
        outcome = wait_for(lambda: _safe_value(accounted), 60, "every hostile answer accounted for")
    except AssertionError:
        raise AssertionError(f"unaccounted: {sorted(set(expected) - set(accounted() or {}))}") from None
    assert outcome == expected
    # An answer the service could read, refused as it read it, is told to the agency that gave it
    # (the intake or the console authenticated it); what is no answer, and the answer to an id
    # nobody sent (refused when its window ended), are not.
    raw_of = dict(corpus)
    told = {name for name, reason in expected.items() if reason in ("not_entitled", "already_final", "no_effect")}
    agency_of = {name: str(sniffed(raw_of[name], "agency")) for name in told}
    agencies = set(agency_of.values())
    assert agencies == {"youth_league", COMMAND_CENTRE}

    def notices_read() -> dict[tuple[int, int] | None, tuple[str, str]] | None:
        found: dict[tuple[int, int] | None, tuple[str, str]] = {}
        for agency in agencies:
            for r in records(kafka, refusals_topic_name(agency)):
                notice = RefusalNotice.model_validate_json(r.value)
                assert notice.topic == ANSWERS.name and MARK not in notice.model_dump_json()
                found[(notice.partition, notice.offset)] = (agency, notice.reason)
        return found if len(found) >= len(told) else None

    notices = wait_for(lambda: _safe_value(notices_read), 60, "the notices of the answers the alerts service refused")
    assert notices == {at[name]: (agency_of[name], expected[name]) for name in told}
    refusals = [r for r in records(kafka, ANSWERS_REFUSED.name)]
    assert len(refusals) == sum(1 for v in expected.values() if v != "applied")  # one each, no more
    for r in refusals:
        assert MARK.encode() not in (r.value or b"")
    # The backdated answer of an entitled agency is applied at the time the bus received it.
    entry = next(h for h in _states(kafka)[alert_id].history if h.ref == ids["backdated_entitled"])
    assert entry.claimed_at is not None and entry.claimed_at.year == 2020 and entry.at.year > 2020

    # Refused through the intake too, before anything is written.
    centre = {"Content-Type": "application/json", "Authorization": f"Bearer {DEMO_TOKENS[COMMAND_CENTRE]}"}
    school = {**centre, "Authorization": f"Bearer {DEMO_TOKENS['education']}"}
    ack = b'{"answer": "acknowledged"}'
    for path, headers, raw, status in ((f"/v1/referrals/{uuid.uuid4()}/answers", centre, ack, 404),
                                       (f"/v1/referrals/{lead_id}/answers", school, b'{"answer": "accepted"}', 403),
                                       (f"/v1/referrals/{alert_id}/answers", centre, b'"ACK"', 422),
                                       (f"/v1/referrals/{MARK}/answers", centre, b"{}", 422)):
        r = httpx.post(f"{api}{path}", content=raw, headers=headers, timeout=10)
        assert r.status_code == status and MARK not in r.text, (path, r.text)

    # -- the alerts service read the rest, and restarts over its hostile changelogs -------------
    metrics = scrape(ports["alerts"])
    assert total(metrics, "referral_bus_internal_errors_total") == 0
    assert total(metrics, "referral_bus_alerts_records_refused_total") >= 3 * (len(junk) - 1)
    alerts.stop()
    alerts.start()
    wait_for(lambda: serving(f"http://127.0.0.1:{ports['alerts']}/metrics"), 60, "the alerts service after a restart")
    report = missing_child(description="Child last seen at the square.")
    produce(kafka, EVENTS.name, [("valid", dumps(report))], key=lambda _: report["event_id"].encode())
    valid_alert = str(alert_id_for(uuid.UUID(report["event_id"])))
    wait_for(lambda: _safe(lambda: valid_alert in _states(kafka)), 90, "the valid report alerted and tracked")
    restored = scrape(ports["alerts"])
    assert total(restored, "referral_bus_alerts_records_refused_total", input="state") >= 1
    assert total(restored, "referral_bus_internal_errors_total") == 0
    for name, svc in (("alerts", alerts), ("intake", intake)):
        assert svc.process is not None and svc.process.poll() is None, f"{name} exited:\n{svc.log[-3000:]}"
        assert MARK not in svc.log, f"{name}'s log repeats what a sender wrote"
    assert total(scrape(ports["intake_metrics"]), "referral_bus_intake_records_refused_total", topic="states") >= 1


def _states(kafka: KafkaSettings) -> dict[str, TrackedState]:
    """The alerts service's latest state of each id (hostile records on the topic left out)."""
    out = {}
    for key, value in latest_by_key(records(kafka, ALERT_STATES.name)).items():
        state = TRACKED_STATE.decode(value)
        if not isinstance(state, Refusal) and str(state.id) == key:
            out[key] = state
    return out


def _safe_value(check: Callable[[], T | None]) -> T | None:
    try:
        return check()
    except (ValueError, KafkaError):
        return None
