"""Commands of the alerts service: run it, answer referrals and alerts, list cases, show a state.

`ack|accept|reject|done ID` answer as the agency whose token they carry, through the intake
(`POST /v1/referrals/{id}/answers`), keeping the answer in a durable outbox until the bus has it
(`bus/answering.py`); `cases` and `status` read the compacted state topics the service keeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import sys
import uuid
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from bus.boundary import CASE_CHANGE, TRACKED_STATE, Contract, Refusal, shown_id
from bus.cli import require_broker
from bus.settings import KafkaSettings
from schemas.alerts import Answer, CaseChange, ReferralResponse, TrackedState, dump
from schemas.answers import AnswerRequest
from topics.catalog import ALERT_STATES, ANSWERS, CASES

console = Console()
err_console = Console(stderr=True)
M = TypeVar("M")

AgencyOpt = Annotated[str | None, typer.Option(
    help="Your agency code, e.g. police.command_center: checked against the token's (optional).")]
ExerciseOpt = Annotated[bool, typer.Option("--exercise", help="Answer given in a drill.")]
TokenOpt = Annotated[str, typer.Option(envvar="REFERRAL_BUS_TOKEN", show_default=False,
                                       help="Your agency's token (or REFERRAL_BUS_TOKEN): the agency that answers.")]
UrlOpt = Annotated[str, typer.Option(envvar="REFERRAL_BUS_INTAKE_URL", help="The intake's base URL.")]
OfficerOpt = Annotated[str | None, typer.Option(help="Who answers for the agency (default: your OS user name).")]
TimeoutOpt = Annotated[float, typer.Option(
    help="How long to keep trying before leaving the answer queued in the outbox.")]
DEFAULT_URL = "http://127.0.0.1:8080"


async def send_response(settings: KafkaSettings, response: ReferralResponse) -> None:
    """Produce one answer (acks=all) on the answers topic, keyed by the referral id, as the
    bus's own services that write it do (the intake, the console). Agencies answer through the
    intake (`ack` and the others below): this is for the bus's own tools and tests."""
    from bus.kafka.clients import producer

    p = producer(settings)
    await p.start()
    try:
        await p.send_and_wait(ANSWERS.name, key=response.key, value=dump(response))
    finally:
        await p.stop()


def _officer(officer: str | None) -> str | None:
    if officer is not None:
        return officer
    try:
        return getpass.getuser()[:100] or None
    except (KeyError, OSError):
        return None


def _answer(answer: Answer, referral_id: str, token: str, url: str, agency: str | None, reason: str | None,
            note: str | None, officer: str | None, exercise: bool, timeout: float) -> None:
    """Queue the answer in the outbox, then send it (and any answer still queued) to the intake."""
    from bus.answering import answer_client, answers_outbox, error_code
    from bus.client import ClientAuthError

    try:
        rid = uuid.UUID(referral_id)
    except ValueError as exc:
        err_console.print("error: that is not an alert or referral id (a UUID)")
        raise typer.Exit(2) from exc
    if not token:
        err_console.print("error: answering needs your agency's token: --token or REFERRAL_BUS_TOKEN")
        raise typer.Exit(2)
    try:
        request = AnswerRequest(answer=answer, reason=reason, note=note, officer=_officer(officer),
                                exercise=exercise, referral_id=rid, agency=agency)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: "
                           f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        err_console.print(f"error: {detail}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from exc
    box = answers_outbox(token)
    response_id = str(request.response_id)
    box.add(request.model_dump_json(exclude_none=True).encode())
    client = answer_client(url, token, box)
    try:
        client.drain(deadline_s=timeout)
    except ClientAuthError as exc:
        err_console.print("error: the intake refused the token (401); the answer stays in the outbox")
        raise typer.Exit(4) from exc
    finally:
        client.close()
    item = next(i for i in box.items() if i.event_id == response_id)
    box.close()
    if item.status == "sent":
        taken = json.loads(item.answer or "{}")
        sys.stdout.write(json.dumps({"response_id": response_id, "referral_id": str(rid), "answer": answer,
                                     "agency": taken.get("agency")}) + "\n")
        return
    if item.status == "rejected":
        code, message = error_code(item.answer)
        err_console.print(f"error: {code}: {message}", soft_wrap=True, highlight=False)
        raise typer.Exit(1)
    err_console.print("the bus is not reachable: the answer is kept in the outbox and sent when it returns "
                      "(`referral-bus outbox --drain`, or the next answer)", soft_wrap=True)
    raise typer.Exit(3)


_ID = Annotated[str, typer.Argument(help="Referral or alert id.")]


def ack(referral_id: _ID, token: TokenOpt = "", url: UrlOpt = DEFAULT_URL, agency: AgencyOpt = None,
        officer: OfficerOpt = None, exercise: ExerciseOpt = False, timeout: TimeoutOpt = 5.0) -> None:
    """Acknowledge a referral or alert (stops its re-sends and escalation)."""
    _answer("acknowledged", referral_id, token, url, agency, None, None, officer, exercise, timeout)


def accept(referral_id: _ID, token: TokenOpt = "", url: UrlOpt = DEFAULT_URL, agency: AgencyOpt = None,
           officer: OfficerOpt = None, exercise: ExerciseOpt = False, timeout: TimeoutOpt = 5.0) -> None:
    """Accept a referral or alert: your agency takes the duty on."""
    _answer("accepted", referral_id, token, url, agency, None, None, officer, exercise, timeout)


def reject(referral_id: _ID,
           reason: Annotated[str, typer.Option(help="Why (required). A rejected lead goes back to the "
                                                    "joint-conference office for re-assignment.")],
           token: TokenOpt = "", url: UrlOpt = DEFAULT_URL, agency: AgencyOpt = None, officer: OfficerOpt = None,
           exercise: ExerciseOpt = False, timeout: TimeoutOpt = 5.0) -> None:
    """Reject a referral or alert, with a reason."""
    _answer("rejected", referral_id, token, url, agency, reason, None, officer, exercise, timeout)


def done(referral_id: _ID, note: Annotated[str, typer.Option(help="What was done (required).")],
         token: TokenOpt = "", url: UrlOpt = DEFAULT_URL, agency: AgencyOpt = None, officer: OfficerOpt = None,
         exercise: ExerciseOpt = False, timeout: TimeoutOpt = 5.0) -> None:
    """Mark a referral or alert done, with a note."""
    _answer("done", referral_id, token, url, agency, None, note, officer, exercise, timeout)


async def latest(settings: KafkaSettings, topic: str) -> dict[str, bytes]:
    """The last value per key of a compacted state topic (deleted keys dropped)."""
    from bus.kafka.reader import latest_by_key, read_all

    return latest_by_key(await read_all(settings, [topic]))


async def load_cases(settings: KafkaSettings) -> tuple[list[CaseChange], dict[str, TrackedState]]:
    """Every case and tracked state as the alerts service published them; a record that is not one
    (written by someone else, or a bug) is left out, and said so in one line."""
    raw_cases, raw_states = await asyncio.gather(latest(settings, CASES.name), latest(settings, ALERT_STATES.name))
    cases = decoded(CASE_CHANGE, raw_cases, CASES.name)
    states = {str(s.id): s for s in decoded(TRACKED_STATE, raw_states, ALERT_STATES.name).values()}
    return list(cases.values()), states


def decoded(contract: Contract[M], raw: dict[str, bytes], topic: str) -> dict[str, M]:
    """The records of a state topic that decode through the trust boundary, by key."""
    out: dict[str, M] = {}
    refused = 0
    for key, value in raw.items():
        model = contract.decode(value)
        if isinstance(model, Refusal):
            refused += 1
        else:
            out[key] = model
    if refused:
        err_console.print(f"{refused} record(s) on {topic} are not the alerts service's and were left out")
    return out


def grouped_referrals(states: dict[str, TrackedState]) -> dict[str, list[dict[str, str]]]:
    """Per clue event id, its referrals grouped under the case the clue was linked to."""
    out: dict[str, list[dict[str, str]]] = {}
    for s in sorted(states.values(), key=lambda s: (s.agency, str(s.id))):
        if s.grouped:
            out.setdefault(str(s.event_id), []).append({"id": str(s.id), "agency": s.agency, "status": s.status})
    return out


def case_rows(cases: list[CaseChange], states: dict[str, TrackedState], now: dt.datetime,
              include_closed: bool = False) -> list[dict[str, object]]:
    """One row per case (open ones unless `include_closed`), oldest first. Ids and codes only.

    `duties` lists every alert and referral the service tracks for the case, with its status; `open`
    counts those not final (a resolved case has none left, except duties raised after it)."""
    from services.alerts.lifecycle import FINAL, case_of

    by_case: dict[str, list[TrackedState]] = {}
    for state in states.values():
        if (case_id := case_of(state)) is not None:
            by_case.setdefault(str(case_id), []).append(state)
    grouped = grouped_referrals(states)
    rows = []
    for c in sorted(cases, key=lambda c: c.opened_at):
        if c.status != "open" and not include_closed:
            continue
        alert = states.get(str(c.alert_id))
        rows.append({
            "case_id": str(c.case_id), "jurisdiction": c.jurisdiction, "status": c.status,
            "exercise": c.exercise, "age_minutes": round((now - c.opened_at).total_seconds() / 60, 1),
            "alert_id": str(c.alert_id),
            "alert_state": alert.status if alert else "unknown",
            "alert_level": alert.level if alert else None,
            "clues": [{"event_id": str(k.event_id), "kind": k.kind, "reason": k.reason,
                       "referrals": grouped.get(str(k.event_id), [])} for k in c.clues],
            "grouped_reports": len(c.grouped_reports),
            "duties": [{"id": str(s.id), "kind": s.kind, "event_kind": s.event_kind, "agency": s.agency,
                        "role": s.role, "status": s.status}
                       for s in sorted(by_case.get(str(c.case_id), ()), key=lambda s: (s.raised_at, str(s.id)))],
            "open": sum(1 for s in by_case.get(str(c.case_id), ()) if s.status not in FINAL),
        })
    return rows


def cases(as_json: Annotated[bool, typer.Option("--json", help="One JSON line per case.")] = False,
          include_closed: Annotated[bool, typer.Option("--all", help="Closed cases too.")] = False) -> None:
    """Open missing-child cases: age, alert state, open duties and linked clues (`--all`: closed too)."""
    all_cases, states = asyncio.run(load_cases(require_broker()))
    rows = case_rows(all_cases, states, dt.datetime.now(dt.UTC), include_closed)
    if as_json:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    table = Table("case", "jurisdiction", "age (min)", "alert", "level", "open duties", "clues", "drill")
    for row in rows:
        clues = row["clues"]
        assert isinstance(clues, list)
        table.add_row(str(row["case_id"]), str(row["jurisdiction"]), str(row["age_minutes"]),
                      str(row["alert_state"]), str(row["alert_level"]), str(row["open"]),
                      "\n".join(f"{c['kind']}: {c['reason']}{_referrals_text(c['referrals'])}" for c in clues) or "-",
                      "yes" if row["exercise"] else "")
    console.print(table)


def _referrals_text(referrals: list[dict[str, str]]) -> str:
    listed = ", ".join(f"{r['agency']} {r['status']}" for r in referrals)
    return f" · grouped referrals: {listed}" if referrals else ""


def status(referral_id: Annotated[str, typer.Argument(help="Referral or alert id.")]) -> None:
    """The tracked state of one referral or alert, as JSON."""
    states = asyncio.run(latest(require_broker(), ALERT_STATES.name))
    raw = states.get(referral_id)
    state = TRACKED_STATE.decode(raw) if raw is not None else None
    if state is None or isinstance(state, Refusal):
        err_console.print(f"error: no tracked referral or alert {shown_id(referral_id)}")
        raise typer.Exit(1)
    sys.stdout.write(state.model_dump_json(exclude={"referral", "alert"}) + "\n")


def alerts() -> None:
    """Run the alerts worker (faust). Uses KAFKA_BOOTSTRAP_SERVERS."""
    from bus import logging as bus_logging
    from services.alerts.app import run

    require_broker()
    bus_logging.configure(json=True)
    run()


def page(
    agency: Annotated[str, typer.Option(help="Who is paged, e.g. police.command_center or anti_trafficking_office.")],
    jurisdiction: Annotated[str | None, typer.Option(help="Only this jurisdiction's pages.")] = None,
    follow: Annotated[bool, typer.Option(help="Keep waiting for new pages.")] = True,
    idle_exit: Annotated[float, typer.Option(help="With --no-follow, stop after this many idle seconds.")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per page.")] = False,
    desk: Annotated[str | None, typer.Option(help="This desk's name, to keep its memory apart (default: the "
                                                  "first desk of the agency no other pager holds).")] = None,
) -> None:
    """Page a duty officer: urgent alerts, re-sends and escalations for one agency, each once.

    Every desk sees every page of its agency (no consumer group); a desk remembers what it showed."""
    from bus import logging as bus_logging
    from bus.settings import StateSettings
    from services.alerts.pager.loop import page_agency
    from services.alerts.pager.memory import DeskTaken

    settings = require_broker()
    bus_logging.configure(json=False, level="WARNING")
    try:
        asyncio.run(page_agency(settings, StateSettings(), agency, jurisdiction=jurisdiction, follow=follow,
                                idle_exit=idle_exit, as_json=as_json, console=console, desk_name=desk,
                                err_console=err_console))
    except DeskTaken as exc:
        err_console.print(f"error: {exc}")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Mount the commands on the `referral-bus` CLI (`services/cli.py`)."""
    app.command()(alerts)
    app.command()(page)
    for command in (ack, accept, reject, done):
        app.command()(command)
    app.command()(cases)
    app.command()(status)
