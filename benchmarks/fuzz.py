"""Hostile input against the running bus: what each message became, and what it cost the others.

On a fresh local broker (or KAFKA_BOOTSTRAP_SERVERS), with `referral-bus router`, `broadcast`,
`intake` and `alerts` as subprocesses:
  1. baseline: a hospital's legitimate traffic (publish an event, read its receipt) at a steady
     rate, latency measured per request;
  2. attack: the same legitimate traffic while `--requests` hostile HTTP requests (bodies from the
     corpus of tests/hostile.py and random mutations of valid events, lone surrogates, NaN, deep
     nesting, oversize bodies, wrong secrets, missing tokens, wrong content types, unknown routes,
     unparseable requests and requests that never finish) go to the intake, `--messages`
     hostile messages to `events.inbound`, and `--answers` hostile answers to the answers topic
     (the corpus of tests/hostile.py about tracked alerts, then mutated answers: junk fields, no
     agency, agencies not entitled, unknown ids, random bytes);
  3. accounting: every inbound message is a dead letter at its own position (by reason) or a
     routed event with a receipt; every answer is applied (in its alert's or referral's history)
     or refused on `answers.refused` (by reason); a service that exits is a crash (restarted,
     like a supervisor would, at most 3 times); a request with no answer within 30 s is a hang;
  4. abuse: 600 wrong-secret attempts at 24/s against a token id while a receipt is read 5 times
     a second (its latency, and the intake's memory), and how long a request whose head or body
     never ends keeps its connection.
Prints the figures, then one JSON line. `--quick` runs a small version (the suite runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaProducer

from bus.kafka.admin import create_topics
from bus.kafka.reader import read_all
from bus.local_broker import die_with_parent, free_port, local_broker
from bus.settings import KafkaSettings
from schemas.alerts import ANSWERS as ANSWER_VALUES
from schemas.alerts import alert_id_for
from services.intake.demo import DEMO_TOKENS
from tests.hostile import (
    HOSPITAL,
    MARK,
    answer,
    answer_corpus,
    dumps,
    hospital_report,
    inbound_corpus,
    missing_child,
    release,
    sniffed,
)
from topics.catalog import ALERT_STATES, ANSWERS, ANSWERS_REFUSED, DEAD_LETTERS, EVENTS, RECEIPTS

W = TypeVar("W")  # what a produced message is accounted as

CLI = str(Path(sys.executable).with_name("referral-bus"))
TOKEN = DEMO_TOKENS[HOSPITAL]
HANG_S = 30.0
MAX_RESTARTS = 3


# -- the services ----------------------------------------------------------------------------------


@dataclass
class Proc:
    """A `referral-bus` service; restarted when it exits, each exit counted as a crash."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    crashes: int = 0
    exit_codes: list[int] = field(default_factory=list)

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen([CLI, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=die_with_parent)

    def check(self) -> None:
        """Count an exit as a crash and restart (what Compose's `restart: unless-stopped` does),
        at most MAX_RESTARTS times: a service that exits again on the same message stays down."""
        if self.process is not None and self.process.poll() is not None:
            self.crashes += 1
            self.exit_codes.append(self.process.returncode)
            if self.crashes <= MAX_RESTARTS:
                self.start()
            else:
                self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else -1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            out[name] = cpu_seconds(pid)
    return out


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) MB of a process, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


# -- legitimate traffic ----------------------------------------------------------------------------


async def legit_process(url: str, seconds: float, rate: float, stop_file: Path | None = None) -> dict[str, Any]:
    """Legitimate traffic from a process of its own (the attacker's event loop must not delay it):
    `seconds` long, or until `stop_file` exists."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    by_kind: dict[str, list[float]] = {"publish": [], "receipt": []}
    async with httpx.AsyncClient(base_url=url) as client:
        if stop_file is None:
            await legitimate(client, seconds, rate, latencies, errors, by_kind)
        else:
            while not stop_file.exists():
                await legitimate(client, 1.0, rate, latencies, errors, by_kind)
    return {"latencies": latencies, "errors": dict(errors), "by_kind": by_kind}


def legit(url: str, seconds: float, rate: float, stop_file: Path | None = None) -> subprocess.Popen[bytes]:
    # As a module: run as a script, its folder would come first on sys.path and benchmarks/rules.py
    # would shadow the `rules` package.
    args = [sys.executable, "-m", "benchmarks.fuzz", "--legit-client", url, "--legit-seconds", str(seconds),
            "--legit-rate", str(rate)]
    if stop_file is not None:
        args += ["--legit-stop-file", str(stop_file)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, preexec_fn=die_with_parent)


def collected(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=600)
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def legitimate(client: httpx.AsyncClient, seconds: float, rate: float, latencies: list[float],
                     errors: Counter[str], by_kind: dict[str, list[float]] | None = None) -> None:
    """A hospital publishes an event and reads its receipt, `rate` requests a second."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    started = time.monotonic()
    last_id: str | None = None
    n = 0
    while time.monotonic() - started < seconds:
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        t0 = time.perf_counter()
        try:
            if n % 2 == 0 or last_id is None:
                event = hospital_report()
                r = await client.post("/v1/events", content=dumps(event), headers=headers, timeout=HANG_S)
                if r.status_code == 202:
                    last_id = event["event_id"]
            else:
                r = await client.get(f"/v1/events/{last_id}", headers=headers, timeout=HANG_S)
            latencies.append((time.perf_counter() - t0) * 1000)
            if by_kind is not None:
                by_kind["publish" if n % 2 == 0 or last_id is None else "receipt"].append(latencies[-1])
            if r.status_code not in (200, 202):
                errors[str(r.status_code)] += 1
        except httpx.HTTPError as exc:
            errors[type(exc).__name__] += 1
        n += 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- hostile traffic -------------------------------------------------------------------------------


def junk(rnd: random.Random) -> Any:
    """A value a careless or hostile sender puts in a field."""
    pick = rnd.randrange(12)
    if pick == 0:
        return "\ud800" + MARK
    if pick == 1:
        return MARK * rnd.randint(1, 3000)
    if pick == 2:
        return f"\x1b[31m{MARK}\x00"
    if pick == 3:
        return f"\u202e{MARK}"
    if pick == 4:
        return [MARK] * rnd.randint(0, 50)
    if pick == 5:
        return {f"{MARK}{i}": i for i in range(rnd.randint(0, 30))}
    if pick == 6:
        return rnd.choice([None, True, 0, -1, 2**70, 1.5, ""])
    if pick == 7:
        return f" {rnd.choice(['child_missing_reported', 'xian', 'police', HOSPITAL])} "
    if pick == 8:
        value: Any = MARK
        for _ in range(rnd.randint(5, 60)):
            value = [value]
        return value
    if pick == 9:
        return str(uuid.uuid4()).upper()
    if pick == 10:
        return f"{MARK}-{rnd.random()}"
    return float("nan")


FIELDS = ["event_id", "kind", "jurisdiction", "occurred_at", "reported_at", "reporter", "person", "location",
          "description", "details", "case_id", "exercise", "suspicion", MARK, "last_seen_at"]


def hostile_body(rnd: random.Random, corpus: list[tuple[str, bytes | None]]) -> tuple[str, bytes]:
    pick = rnd.random()
    if pick < 0.3:
        name, raw = corpus[rnd.randrange(len(corpus))]
        return f"corpus:{name}", raw or b""
    if pick < 0.65:
        event = rnd.choice([hospital_report, missing_child, lambda: release(str(uuid.uuid4()))])()
        for _ in range(rnd.randint(1, 3)):
            person = event.get("person")
            target: dict[str, Any] = person if rnd.random() < 0.2 and isinstance(person, dict) else event
            target[rnd.choice(FIELDS)] = junk(rnd)
        try:
            body = json.dumps(event, allow_nan=True).encode("utf-8", "surrogatepass")
        except (ValueError, RecursionError):
            body = repr(event).encode("utf-8", "surrogatepass")
        return "mutated_event", body
    if pick < 0.85:
        try:
            return "random_json", json.dumps(junk(rnd)).encode("utf-8", "surrogatepass")
        except ValueError:
            return "random_json", b"[NaN]"
    return "random_bytes", rnd.randbytes(rnd.randint(0, 400))


#: HTTP request shapes, with weights.
SHAPES = [("hostile_body", 55), ("wrong_secret", 8), ("no_token", 6), ("garbage_token", 4),
          ("wrong_content_type", 6), ("oversize", 4), ("bad_receipt_path", 8), ("unknown_route", 4),
          ("unparseable", 3), ("incomplete", 2)]


@dataclass
class Attack:
    statuses: Counter[str] = field(default_factory=Counter)
    by_shape: dict[str, Counter[str]] = field(default_factory=dict)
    hangs: int = 0
    echoes: int = 0
    sent: int = 0

    def record(self, shape: str, status: str) -> None:
        self.statuses[status] += 1
        self.by_shape.setdefault(shape, Counter())[status] += 1


async def raw_request(port: int, data: bytes, wait_s: float = HANG_S) -> str:
    """Send raw bytes; the answer's status code, 'closed' (no answer), or 'hang'."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "connect_error"
    try:
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), wait_s)
        if not answer:
            return "closed"
        return answer.split(b" ", 2)[1].decode(errors="replace")
    except TimeoutError:
        return "hang"
    except OSError:
        return "closed"
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def hostile_http(client: httpx.AsyncClient, port: int, total: int, concurrency: int, seed: int,
                       attack: Attack) -> None:
    rnd = random.Random(seed)
    corpus = [(n, r) for n, r in inbound_corpus() if r is None or len(r) < 200_000]
    shapes = [s for s, w in SHAPES for _ in range(w)]
    token_id = TOKEN.split("_")[1]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def one(i: int) -> None:
        shape = shapes[rnd.randrange(len(shapes))]
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        try:
            if shape == "unparseable":
                status = await raw_request(port, rnd.choice([b"NOT HTTP\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n",
                                                             b"GET / HTTP/1.1\r\nHost: x\r\nBad{H}: 1\r\n\r\n"]))
            elif shape == "incomplete":
                status = await raw_request(port, rnd.choice([
                    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Ty",
                    (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"a\":").encode()]))
            else:
                method, path, content = "POST", "/v1/events", b"{}"
                if shape == "hostile_body":
                    _, content = hostile_body(rnd, corpus)
                elif shape == "wrong_secret":
                    headers["Authorization"] = f"Bearer rb_{token_id}_{'x' * 30}{rnd.randrange(10**6)}"
                    content = dumps(hospital_report())
                elif shape == "no_token":
                    headers.pop("Authorization")
                elif shape == "garbage_token":
                    headers["Authorization"] = f"Bearer {MARK}{rnd.random()}"
                elif shape == "wrong_content_type":
                    headers["Content-Type"] = rnd.choice(["text/plain", f"application/{MARK}", ""])
                elif shape == "oversize":
                    content = dumps(hospital_report(description="x" * 70_000))
                elif shape == "bad_receipt_path":
                    method, path = "GET", "/v1/events/" + rnd.choice([MARK, "%00", "x" * 500, "..%2f..%2fetc",
                                                                      str(uuid.uuid4())])
                else:
                    method, path = rnd.choice(["PUT", "DELETE", "GET", "PATCH"]), f"/{MARK}/{rnd.random()}"
                r = await client.request(method, path, content=content, headers=headers, timeout=HANG_S)
                status = str(r.status_code)
                if MARK in r.text:
                    attack.echoes += 1
                if r.status_code >= 400:
                    error = r.json()["error"]  # every status in the documented shape
                    assert error["code"] and isinstance(error["fields"], list), r.text
        except httpx.TimeoutException:
            status = "hang"
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        except (ValueError, KeyError, AssertionError):
            status = "not_the_error_shape"
        if status == "hang":
            attack.hangs += 1
        attack.record(shape, status)
        attack.sent += 1

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def inbound_messages(total: int, seed: int) -> Iterator[tuple[str, bytes | None]]:
    """The corpus once (its large messages included), then random hostile and mutated messages."""
    rnd = random.Random(seed + 1)
    corpus = inbound_corpus()
    yield from corpus
    small = [(n, r) for n, r in corpus if r is None or len(r) < 100_000]
    for _ in range(total - len(corpus)):
        yield hostile_body(rnd, small)


@dataclass(frozen=True)
class Placed:
    """A hostile message on the bus: its class, and the event id it names if any (a receipt's key)."""

    name: str
    event_id: str | None


def _event_id(value: bytes | None) -> str | None:
    try:
        obj = json.loads(value or b"")
    except (ValueError, RecursionError):
        return None
    found = obj.get("event_id") if isinstance(obj, dict) else None
    try:
        return str(uuid.UUID(found.strip())) if isinstance(found, str) else None  # as a receipt names it
    except ValueError:
        return None


async def hostile_kafka(kafka: KafkaSettings, total: int, seed: int) -> dict[tuple[int, int], Placed]:
    """Produce the hostile messages; {(partition, offset): what} of those on the bus."""
    return await produce_placed(kafka, EVENTS.name, (
        (Placed(name, _event_id(value)), value, f"fuzz-{i}".encode())
        for i, (name, value) in enumerate(inbound_messages(total, seed))))


async def produce_placed(kafka: KafkaSettings, topic: str,
                         messages: Iterable[tuple[W, bytes | None, bytes]]) -> dict[tuple[int, int], W]:
    """Produce each (what, value, key) to `topic`; {(partition, offset): what} of those the broker
    took (one it refused, e.g. over its size limit, is simply not on the bus)."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all",
                                max_request_size=4 * 1024 * 1024, linger_ms=5)
    await producer.start()
    placed: dict[tuple[int, int], W] = {}
    try:
        futures = []
        for what, value, key in messages:
            futures.append((what, await producer.send(topic, value=value, key=key)))
        for what, fut in futures:
            with contextlib.suppress(Exception):
                meta = await fut
                placed[(meta.partition, meta.offset)] = what
    finally:
        await producer.stop()
    return placed


async def accounting(kafka: KafkaSettings, placed: dict[tuple[int, int], Placed]) -> tuple[Counter[str], int]:
    """Each placed message's outcome: a dead letter at its position (by reason), or routed (a
    receipt `routed` for the event id it names); the count of messages with neither."""
    letters = {}
    for record in await read_all(kafka, [DEAD_LETTERS.name]):
        letter = json.loads(record.value or b"{}")
        if letter.get("topic") == EVENTS.name:
            letters[(letter["partition"], letter["offset"])] = letter["reason"]
    routed = set()
    for record in await read_all(kafka, [RECEIPTS.name]):
        receipt = json.loads(record.value or b"{}")
        if receipt.get("status") == "routed":
            routed.add(receipt["event_id"])
    reasons: Counter[str] = Counter()
    for position, what in placed.items():
        if position in letters:
            reasons[letters[position]] += 1
        elif what.event_id in routed:
            reasons["routed"] += 1
        else:
            reasons["unaccounted"] += 1
    return reasons, reasons.pop("unaccounted", 0)


# -- hostile answers -------------------------------------------------------------------------------

#: Who answers a mutated answer: the command centre (entitled), agencies it was never addressed to,
#: none, or an unknown code.
ANSWERERS = ["police.command_center", "youth_league", "education", "police", None, f"police.{MARK}"]


@dataclass(frozen=True)
class Targets:
    """Tracked alerts and the command centre's lead referral beside each, to aim answers at."""

    alerts: list[str]
    leads: list[str]


def hostile_answers(total: int, seed: int, targets: Targets) -> Iterator[tuple[str, bytes | None, bytes]]:
    """(class, message, key): the corpus once per target pair, then mutated answers and junk. Keyed
    by the id answered, as the bus's producers key answers."""
    rnd = random.Random(seed + 2)
    count = 0
    for alert_id, lead_id, done_id in zip(targets.alerts, targets.leads, targets.alerts[1:], strict=False):
        for name, raw in answer_corpus(alert_id, lead_id, done_id):
            if count < total:
                count += 1
                key = sniffed(raw, "referral_id") or f"fuzz-answer-{count}"
                yield f"corpus:{name}", raw, key.encode("utf-8", "replace")
    ids = targets.alerts + targets.leads
    while count < total:
        count += 1
        pick = rnd.random()
        if pick < 0.7:
            referral_id = rnd.choice(ids) if rnd.random() < 0.8 else str(uuid.uuid4())
            obj = answer(referral_id, rnd.choice(ANSWER_VALUES), agency=rnd.choice(ANSWERERS))
            for _ in range(rnd.randint(0, 2)):
                obj[rnd.choice([*obj, "officer", "exercise", MARK])] = junk(rnd)
            try:
                raw = json.dumps(obj, allow_nan=True).encode("utf-8", "surrogatepass")
            except (ValueError, RecursionError):
                raw = repr(obj).encode("utf-8", "surrogatepass")
            yield "mutated_answer", raw, referral_id.encode()
        elif pick < 0.85:
            try:
                yield "random_json", json.dumps(junk(rnd)).encode("utf-8", "surrogatepass"), f"fuzz-a{count}".encode()
            except ValueError:
                yield "random_json", b"[NaN]", f"fuzz-a{count}".encode()
        else:
            yield "random_bytes", rnd.randbytes(rnd.randint(0, 400)), f"fuzz-a{count}".encode()


@dataclass(frozen=True)
class PlacedAnswer:
    name: str
    response_id: str | None


async def hostile_kafka_answers(kafka: KafkaSettings, total: int, seed: int,
                                targets: Targets) -> dict[tuple[int, int], PlacedAnswer]:
    """Produce the hostile answers; {(partition, offset): what} of those on the bus."""
    return await produce_placed(kafka, ANSWERS.name, (
        (PlacedAnswer(name, _response_id(value)), value, key)
        for name, value, key in hostile_answers(total, seed, targets)))


def _response_id(value: bytes | None) -> str | None:
    found = sniffed(value, "response_id")
    try:
        return str(uuid.UUID(found)) if found is not None else None
    except ValueError:
        return None


async def answer_accounting(kafka: KafkaSettings,
                            placed: dict[tuple[int, int], PlacedAnswer]) -> tuple[Counter[str], int]:
    """Each placed answer's outcome: refused (a record on answers.refused at its position or with
    its response id, by reason) or applied (its response id in a tracked state's history)."""
    at_position: dict[tuple[int, int], str] = {}
    by_response: dict[str, str] = {}
    for record in await read_all(kafka, [ANSWERS_REFUSED.name]):
        refusal = json.loads(record.value or b"{}")
        if refusal.get("topic") == ANSWERS.name:
            at_position[(refusal["partition"], refusal["offset"])] = refusal["reason"]
        if refusal.get("response_id"):
            by_response[refusal["response_id"]] = refusal["reason"]
    applied: set[str] = set()
    for record in await read_all(kafka, [ALERT_STATES.name]):
        with contextlib.suppress(ValueError, AttributeError, TypeError, RecursionError):
            applied |= {h.get("ref") for h in json.loads(record.value or b"{}").get("history", ())}
    outcomes: Counter[str] = Counter()
    for position, what in placed.items():
        if position in at_position:
            outcomes[at_position[position]] += 1
        elif what.response_id in by_response:
            outcomes[by_response[what.response_id]] += 1
        elif what.response_id in applied:
            outcomes["applied"] += 1
        else:
            outcomes["unaccounted"] += 1
    return outcomes, outcomes.pop("unaccounted", 0)


async def tracked_targets(kafka: KafkaSettings, reports: list[dict[str, Any]]) -> Targets | None:
    """The reports' alerts and lead referrals, once the alerts service tracks them all."""
    states: dict[str, dict[str, Any]] = {}
    for record in await read_all(kafka, [ALERT_STATES.name]):
        with contextlib.suppress(ValueError, TypeError):
            states[(record.key or b"").decode()] = json.loads(record.value or b"{}")
    alerts = [str(alert_id_for(uuid.UUID(r["event_id"]))) for r in reports]
    leads = [states[a].get("twin_id") for a in alerts if a in states]
    if len(leads) < len(alerts) or not all(lead in states for lead in leads):
        return None
    return Targets(alerts, [str(lead) for lead in leads])


# -- abuse figures ---------------------------------------------------------------------------------


async def auth_attack(client: httpx.AsyncClient, intake: Proc, tries: int, rate: float,
                      token_agency: str = "police.command_center") -> dict[str, Any]:
    """Wrong secrets for a known token id at `rate`/s; a receipt read 5 times a second meanwhile."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    event = hospital_report()
    await client.post("/v1/events", content=dumps(event), headers=headers)
    receipt = f"/v1/events/{event['event_id']}"

    async def reads(seconds: float) -> list[float]:
        out = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            await client.get(receipt, headers=headers, timeout=HANG_S)
            out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.2)
        return out

    before = await reads(3)
    rss_before, _ = memory_mb(intake.pid)
    statuses: Counter[str] = Counter()
    token_id = DEMO_TOKENS[token_agency].split("_")[1]  # a known id; the hospital's own reads go on

    async def guesses() -> None:
        async def guess(i: int) -> None:
            r = await client.get(receipt, headers={"Authorization": f"Bearer rb_{token_id}_{'y' * 30}{i}"},
                                 timeout=HANG_S)
            statuses[str(r.status_code)] += 1

        tasks = []
        started = time.monotonic()
        for i in range(tries):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(guess(i)))
        await asyncio.gather(*tasks)

    during_task = asyncio.create_task(reads(max(tries / rate, 5.0)))
    await guesses()
    during = await during_task
    rss_after, peak = memory_mb(intake.pid)
    return {"tries": tries, "rate_per_s": rate, "statuses": dict(statuses),
            "receipt_ms_before_p50": statistics.median(before), "receipt_ms_during_p50": statistics.median(during),
            "receipt_ms_during_p99": percentile(during, 0.99),
            "rss_mb_before": round(rss_before, 1), "rss_mb_after": round(rss_after, 1), "rss_mb_peak": round(peak, 1)}


async def slow_requests(port: int) -> dict[str, float | str]:
    """Seconds until the intake answers (or closes) a request whose head, or body, never ends."""
    out: dict[str, float | str] = {}

    async def timed(name: str, data: bytes) -> None:
        t0 = time.monotonic()
        status = await raw_request(port, data, wait_s=120)
        out[f"{name}_s"] = round(time.monotonic() - t0, 1)
        out[f"{name}_answer"] = status

    body = (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{").encode()
    await asyncio.gather(timed("incomplete_head", b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Ty"),
                         timed("incomplete_body", body))
    return out


# -- the run ---------------------------------------------------------------------------------------


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


async def supervise(procs: list[Proc], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for p in procs:
            p.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def run(kafka: KafkaSettings, procs: dict[str, Proc], port: int, args: argparse.Namespace,
              tmp: Path) -> dict[str, Any]:
    stop = asyncio.Event()
    supervisor = asyncio.create_task(supervise(list(procs.values()), stop))
    url = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=args.concurrency + 8)
    async with httpx.AsyncClient(base_url=url, limits=limits) as hostile_client, \
            httpx.AsyncClient(base_url=url) as client:
        baseline = await asyncio.to_thread(collected, legit(url, args.legit_seconds, args.legit_rate))
        base = baseline["latencies"]
        print(f"baseline: {len(base)} legitimate requests, "
              f"p50 {percentile(base, 0.5):.1f} ms, p99 {percentile(base, 0.99):.1f} ms")

        # Failed authentication first, while no other failure has been counted for this client:
        # at the pace (24/s), then all at once (the process's memory under a burst).
        abuse = await auth_attack(client, procs["intake"], args.auth_tries, 24.0)
        abuse["burst"] = await auth_attack(client, procs["intake"], args.auth_tries, 10_000.0,
                                           token_agency="police")
        if args.only_abuse:
            slow = await slow_requests(port)
            stop.set()
            await supervisor
            return {"abuse": abuse, "slow": slow, "baseline": baseline["latencies"]}

        stop_file = tmp / "attack-over"
        during_process = legit(url, 0, args.legit_rate, stop_file)
        attack = Attack()
        pids = {name: p.pid for name, p in procs.items()} | args.other_pids | {"attacker": os.getpid()}
        cpu_before = cpu_of(pids)
        t0 = time.monotonic()
        _, placed, placed_answers = await asyncio.gather(
            hostile_http(hostile_client, port, args.requests, args.concurrency, args.seed, attack),
            hostile_kafka(kafka, args.messages, args.seed),
            hostile_kafka_answers(kafka, args.answers, args.seed, args.targets))
        attack_s = time.monotonic() - t0
        cpu = {name: round((spent - cpu_before.get(name, 0.0)) / attack_s, 2)
               for name, spent in cpu_of(pids).items()}
        print(f"CPU during the attack (cores): {cpu}")
        stop_file.touch()
        during = await asyncio.to_thread(collected, during_process)
        print(f"attack: {attack.sent} hostile requests, {len(placed)} hostile inbound messages and "
              f"{len(placed_answers)} hostile answers in {attack_s:.1f} s; "
              f"{len(during['latencies'])} legitimate requests meanwhile, "
              f"p50 {percentile(during['latencies'], 0.5):.1f} ms, p99 {percentile(during['latencies'], 0.99):.1f} ms")

        # Every inbound message: a dead letter or routed. The router may still be reading.
        reasons: Counter[str] = Counter()
        unaccounted = len(placed)
        deadline = time.monotonic() + args.drain_s
        while time.monotonic() < deadline:
            reasons, unaccounted = await accounting(kafka, placed)
            if unaccounted == 0:
                break
            await asyncio.sleep(2)
        # Every answer: applied or refused. Answers to unknown ids wait out their parking window.
        answer_outcomes: Counter[str] = Counter()
        answers_unaccounted = len(placed_answers)
        while time.monotonic() < deadline:
            answer_outcomes, answers_unaccounted = await answer_accounting(kafka, placed_answers)
            if answers_unaccounted == 0:
                break
            await asyncio.sleep(2)
        slow = await slow_requests(port)
    stop.set()
    await supervisor
    for p in procs.values():
        p.check()
    return {"baseline": baseline["latencies"], "baseline_errors": baseline["errors"],
            "during": during["latencies"], "during_errors": during["errors"],
            "baseline_by_kind": baseline["by_kind"], "during_by_kind": during["by_kind"],
            "attack": attack, "placed": placed, "reasons": reasons, "unaccounted": unaccounted,
            "placed_answers": placed_answers, "answer_outcomes": answer_outcomes,
            "answers_unaccounted": answers_unaccounted,
            "attack_s": attack_s, "abuse": abuse, "slow": slow, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="hostile HTTP requests to the intake")
    parser.add_argument("--messages", type=int, default=10_000, help="hostile messages to events.inbound")
    parser.add_argument("--answers", type=int, default=10_000, help="hostile answers to the answers topic")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--legit-rate", type=float, default=10.0, help="legitimate requests per second")
    parser.add_argument("--legit-seconds", type=float, default=20.0, help="length of the baseline")
    parser.add_argument("--auth-tries", type=int, default=600)
    parser.add_argument("--drain-s", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--quick", action="store_true", help="a small run, as the test suite runs it")
    parser.add_argument("--only-abuse", action="store_true", help="only the failed-authentication and slow-request "
                                                                  "figures (no fuzzing)")
    parser.add_argument("--legit-client", help=argparse.SUPPRESS)  # the legitimate traffic's own process
    parser.add_argument("--legit-stop-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.legit_client:
        result = asyncio.run(legit_process(args.legit_client, args.legit_seconds, args.legit_rate,
                                           args.legit_stop_file))
        print(json.dumps(result))
        return
    if args.quick:
        args.requests, args.messages, args.legit_seconds, args.auth_tries, args.drain_s = 400, 400, 3.0, 48, 90.0
        args.answers = 400

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        args.other_pids = {}
        if not bootstrap:
            broker = stack.enter_context(local_broker(Path(tmp) / "tansu.log"))
            bootstrap = broker.bootstrap
            if broker.process is not None:
                args.other_pids["broker"] = broker.process.pid
        kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap)
        asyncio.run(create_topics(kafka))
        port, router_metrics, intake_metrics, feed = free_port(), free_port(), free_port(), free_port()
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REFERRAL_BUS_STATE_DIR": f"{tmp}/state",
               "REFERRAL_BUS_ROUTER_METRICS_PORT": str(router_metrics),
               "REFERRAL_BUS_ALERTS_METRICS_PORT": "0", "REFERRAL_BUS_BROADCAST_METRICS_PORT": "0",
               "REFERRAL_BUS_BROADCAST_HTTP_PORT": str(feed), "REFERRAL_BUS_BROADCAST_HTTP_HOST": "127.0.0.1",
               "REFERRAL_BUS_INTAKE_PORT": str(port), "REFERRAL_BUS_INTAKE_METRICS_PORT": str(intake_metrics),
               # answers to ids nobody sends are refused (unknown_id) within the run
               "REFERRAL_BUS_ALERTS_PARK_SECONDS": "5", "REFERRAL_BUS_ALERTS_LAG_INTERVAL": "0"}
        procs = {name: Proc(name, [name], env, Path(tmp) / f"{name}.log")
                 for name in ("router", "broadcast", "intake", "alerts")}
        for p in procs.values():
            p.start()
        try:
            wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200, 60,
                       "the intake")
            _wait_routed(kafka, port)
            args.targets = _wait_targets(kafka)
            result = asyncio.run(run(kafka, procs, port, args, Path(tmp)))
            logs = {name: p.log.read_text(errors="replace") for name, p in procs.items()}
        finally:
            for p in procs.values():
                p.stop()
    report(result, procs, logs, args)


def _wait_routed(kafka: KafkaSettings, port: int) -> None:
    """Until the router routes (a hospital event's receipt says routed): the faust group has joined."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    event = hospital_report()
    httpx.post(f"http://127.0.0.1:{port}/v1/events", content=dumps(event), headers=headers, timeout=30)
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/v1/events/{event['event_id']}", headers=headers,
                                 timeout=5).json().get("status") == "routed", 120, "the router")


def _wait_targets(kafka: KafkaSettings, n: int = 6) -> Targets:
    """`n` missing children's alerts, tracked by the alerts service with their lead referrals: what
    the hostile answers are about."""
    reports = [missing_child() for _ in range(n)]

    async def publish() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for r in reports:
                await producer.send_and_wait(EVENTS.name, dumps(r), key=r["event_id"].encode())
        finally:
            await producer.stop()

    asyncio.run(publish())
    found: list[Targets] = []

    def tracked() -> bool:
        targets = asyncio.run(tracked_targets(kafka, reports))
        if targets is not None:
            found.append(targets)
        return targets is not None

    wait_until(tracked, 180, "the alerts service tracking the target alerts")
    return found[0]


def print_abuse(result: dict[str, Any]) -> None:
    abuses = (("failed authentication", result["abuse"]), ("the same, all at once", result["abuse"]["burst"]))
    for name, abuse in abuses:
        print(f"{name}: {abuse['tries']} wrong secrets at {min(abuse['rate_per_s'], abuse['tries']):.0f}/s "
              f"-> {abuse['statuses']}; receipt p50 {abuse['receipt_ms_before_p50']:.1f} ms before, "
              f"{abuse['receipt_ms_during_p50']:.1f} ms during (p99 {abuse['receipt_ms_during_p99']:.1f}); "
              f"intake RSS {abuse['rss_mb_before']} -> {abuse['rss_mb_after']} MB (peak {abuse['rss_mb_peak']} MB)")
    slow = result["slow"]
    print(f"slow requests: head never ends -> {slow['incomplete_head_answer']} after {slow['incomplete_head_s']} s; "
          f"body never ends -> {slow['incomplete_body_answer']} after {slow['incomplete_body_s']} s")


def report(result: dict[str, Any], procs: dict[str, Proc], logs: dict[str, str], args: argparse.Namespace) -> None:
    if args.only_abuse:
        print_abuse(result)
        print(json.dumps({"auth_attack": result["abuse"], "slow_requests": result["slow"]}, sort_keys=True))
        return
    attack: Attack = result["attack"]
    print("\nintake: hostile requests by status")
    for status, n in sorted(attack.statuses.items()):
        print(f"  {status:>22} {n:7d}")
    print("intake: by request shape")
    for shape, counts in sorted(attack.by_shape.items()):
        print(f"  {shape:>22} " + ", ".join(f"{s}: {n}" for s, n in sorted(counts.items())))
    print(f"  hangs (no answer in {HANG_S:.0f} s): {attack.hangs}; "
          f"answers repeating the sender's text: {attack.echoes}")
    print(f"\nevents.inbound: {len(result['placed'])} hostile messages on the bus, by outcome")
    for reason, n in sorted(result["reasons"].items()):
        print(f"  {reason:>22} {n:7d}")
    print(f"  unaccounted: {result['unaccounted']}")
    print(f"\nanswers: {len(result['placed_answers'])} hostile answers on the bus, by outcome "
          "(applied, or refused on answers.refused with this reason)")
    for reason, n in sorted(result["answer_outcomes"].items()):
        print(f"  {reason:>22} {n:7d}")
    print(f"  unaccounted: {result['answers_unaccounted']}")
    crashes = {name: p.crashes for name, p in procs.items()}
    print(f"\ncrashes (a service exited): {crashes}")
    echoed_in_logs = {name: log.count(MARK) for name, log in logs.items()}
    print(f"sender text in service logs: {echoed_in_logs}")
    p99_base, p99_during = percentile(result["baseline"], 0.99), percentile(result["during"], 0.99)
    print(f"\nlegitimate requests: p99 {p99_base:.1f} ms without the attack, {p99_during:.1f} ms during it "
          f"(x{p99_during / p99_base:.2f}); errors {dict(result['baseline_errors'])} / {dict(result['during_errors'])}")
    for kind in ("publish", "receipt"):
        base, att = result["baseline_by_kind"][kind], result["during_by_kind"][kind]
        print(f"  {kind:>8}: p50 {percentile(base, 0.5):.1f} / {percentile(att, 0.5):.1f} ms, "
              f"p99 {percentile(base, 0.99):.1f} / {percentile(att, 0.99):.1f} ms (without / during)")
    print()
    print_abuse(result)
    slow, abuse = result["slow"], result["abuse"]
    summary = {
        "quick": args.quick, "hostile_requests": attack.sent, "hostile_messages": len(result["placed"]),
        "http_statuses": dict(attack.statuses), "dead_letter_reasons": dict(result["reasons"]),
        "unaccounted": result["unaccounted"], "crashes": sum(crashes.values()), "crashes_by_service": crashes,
        "hostile_answers": len(result["placed_answers"]), "answer_outcomes": dict(result["answer_outcomes"]),
        "answers_unaccounted": result["answers_unaccounted"],
        "hangs": attack.hangs, "echoed_answers": attack.echoes, "echoed_in_logs": sum(echoed_in_logs.values()),
        "legit_p50_ms_baseline": round(percentile(result["baseline"], 0.5), 1),
        "legit_p99_ms_baseline": round(p99_base, 1),
        "legit_p50_ms_attack": round(percentile(result["during"], 0.5), 1),
        "legit_p99_ms_attack": round(p99_during, 1), "legit_requests_attack": len(result["during"]),
        **{f"legit_{kind}_p99_ms_{phase}": round(percentile(result[f"{key}_by_kind"][kind], 0.99), 1)
           for kind in ("publish", "receipt") for phase, key in (("baseline", "baseline"), ("attack", "during"))},
        "attack_seconds": round(result["attack_s"], 1), "cpu_cores_during_attack": result["cpu"],
        "auth_attack": abuse, "slow_requests": slow,
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
