"""`referral-bus ack|accept|reject|done` on the real broker, through the intake with the agency's
token: an entitled answer is applied; an unknown id, an agency not entitled and a missing reason
are one-line errors with a non-zero exit; with the intake or the broker away the answer waits in
the outbox, and `referral-bus outbox --drain` delivers it once the bus is back (#17, #21)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bus.local_broker import LocalBroker, free_port
from bus.settings import KafkaSettings
from schemas.alerts import alert_id_for

from .alerts_helpers import CLI, SHORT, as_agency, publish, report, start_answering_intake, states, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CENTRE = "police.command_center"


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=90, check=False)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_terminal_answers_go_through_the_intake_and_wait_out_an_outage(
        kafka: KafkaSettings, broker: LocalBroker, spawn: Callable[..., Any], service_env: dict[str, str]) -> None:
    env = {"REFERRAL_BUS_ALERTS_DEADLINES_FILE": str(SHORT), "REFERRAL_BUS_ALERTS_LAG_INTERVAL": "0"}
    spawn("router", env=env)
    spawn("alerts", env=env)
    url = start_answering_intake(spawn)
    first, second = report(), report()
    publish(kafka, [first, second])
    ids = [str(alert_id_for(uuid.UUID(e["event_id"]))) for e in (first, second)]
    wait_until(lambda: all(i in states(kafka) for i in ids), 60, "both alerts tracked")
    centre = as_agency(service_env, url, CENTRE)

    done = run(centre, "ack", ids[0], "--officer", "王明")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: states(kafka)[ids[0]].status == "acknowledged", 20, "the acknowledgement applied")
    entry = states(kafka)[ids[0]].history[-1]
    assert (entry.by, entry.officer) == (CENTRE, "王明")

    # Refused before anything is written: an agency it was not addressed to, an id nobody knows.
    school = run(as_agency(service_env, url, "education"), "accept", ids[1])
    assert school.returncode == 1 and "not_entitled" in one_line(school)
    unknown = run(centre, "ack", str(uuid.uuid4()))
    assert unknown.returncode == 1 and "unknown_id" in one_line(unknown)
    assert run(centre, "reject", ids[1]).returncode == 2  # --reason is required
    blank = run(centre, "reject", ids[1], "--reason", "  ")
    assert blank.returncode == 2 and "rejection needs a reason" in one_line(blank)
    no_token = run({**centre, "REFERRAL_BUS_TOKEN": ""}, "ack", ids[1])
    assert no_token.returncode == 2 and "token" in one_line(no_token)
    assert states(kafka)[ids[1]].status == "sent"

    # The intake is away: the answer is kept, said in one line; the outbox shows it.
    away = {**centre, "REFERRAL_BUS_INTAKE_URL": f"http://127.0.0.1:{free_port()}"}
    queued = run(away, "accept", ids[1], "--timeout", "1")
    assert queued.returncode == 3 and "kept in the outbox" in one_line(queued)
    shown = run(centre, "outbox", "--json")
    (pending,) = [line for line in shown.stdout.splitlines() if '"answer"' in line and '"pending"' in line]
    assert '"kind": "answer"' in pending

    # The broker is away: the intake cannot store it (503), so it is kept too.
    broker.freeze()
    try:
        frozen = run(centre, "done", ids[0], "--note", "found at the station", "--timeout", "2")
        assert frozen.returncode == 3 and "kept in the outbox" in one_line(frozen)
    finally:
        broker.thaw()

    drained = run(centre, "outbox", "--drain", "--timeout", "60")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    assert "answers: sent 2, rejected 0, pending 0" in drained.stdout, run(centre, "outbox", "--all", "--json").stdout
    wait_until(lambda: (s := states(kafka))[ids[1]].status == "accepted" and s[ids[0]].status == "done", 30,
               "both queued answers applied")
