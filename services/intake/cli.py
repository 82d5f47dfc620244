"""Commands of the intake issue, mounted on `referral-bus` by `register(app)` (`services/cli.py`):

`intake`, `intake-token`, `publish`, `outbox`, `deadletters`, `replay`, `acl plan|apply`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bus.cli import require_broker
from bus.settings import KafkaSettings, StateSettings

console = Console()
err_console = Console(stderr=True)

DEFAULT_URL = "http://127.0.0.1:8080"
TokenOpt = Annotated[str, typer.Option(envvar="REFERRAL_BUS_TOKEN", help="Your agency token (or REFERRAL_BUS_TOKEN).")]
UrlOpt = Annotated[str, typer.Option(envvar="REFERRAL_BUS_INTAKE_URL", help="The intake's base URL.")]
OutboxOpt = Annotated[Path | None, typer.Option(help="Outbox file (default: STATE_DIR/outbox.sqlite).")]


def _outbox_path(path: Path | None) -> Path:
    return path if path is not None else StateSettings().state_dir / "outbox.sqlite"


def intake(
    host: Annotated[str | None, typer.Option(help="Bind address (default REFERRAL_BUS_INTAKE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default REFERRAL_BUS_INTAKE_PORT, 8080).")] = None,
    openapi: Annotated[Path | None, typer.Option(help="Write the OpenAPI document here and exit.")] = None,
) -> None:
    """Run the intake (HTTP publishing, receipts, agency delivery stream, /metrics)."""
    from bus import logging as bus_logging
    from services.intake.app import create_app, openapi_document, run
    from services.intake.settings import IntakeSettings

    if openapi is not None:
        app = create_app(IntakeSettings(), KafkaSettings(), StateSettings())
        openapi.write_text(openapi_document(app), encoding="utf-8")
        console.print(f"wrote {openapi}")
        return
    bus_logging.configure(json=True)
    run(host, port)


def intake_token(agency: Annotated[str, typer.Argument(help="The agency code the token is for.")]) -> None:
    """Make a new token: prints it once, and the entry to add to the credentials file."""
    from bus.credentials import new_token
    from rules.catalog import catalog

    if agency not in catalog().agencies:
        err_console.print(f"error: unknown agency code {agency!r}")
        raise typer.Exit(2)
    token, entry = new_token()
    console.print(f"token (give it to {agency}; it is not stored anywhere): {token}", soft_wrap=True)
    console.print(f"  - agency: {agency}\n    tokens:\n      - id: {entry.id}\n        salt: {entry.salt}\n"
                  f"        scrypt: {entry.scrypt}", soft_wrap=True, highlight=False)


def publish(
    source: Annotated[str, typer.Argument(help="A JSON event, or JSON lines; '-' reads stdin.")],
    token: TokenOpt,
    url: UrlOpt = DEFAULT_URL,
    outbox: OutboxOpt = None,
    timeout: Annotated[float, typer.Option(
        help="Stop waiting after this many seconds (events stay queued); 0 waits until they are sent.")] = 30.0,
) -> None:
    """Queue events in the durable outbox, then send them until the intake acknowledges each: while
    the intake is unreachable the outbox retries by itself (with backoff) and says so."""
    from bus.client import ClientAuthError, IntakeClient
    from bus.outbox import Outbox, OutboxError

    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    stripped = text.strip()
    bodies = [stripped] if stripped.startswith("{") and "\n{" not in stripped else [
        line for line in text.splitlines() if line.strip()]
    box = Outbox(_outbox_path(outbox))
    client = IntakeClient(url, token, box)
    try:
        for n, body in enumerate(bodies, 1):
            try:
                event_id, new = box.add(body.encode())
            except OutboxError as exc:
                err_console.print(f"error: event {n}: {exc}")
                raise typer.Exit(2) from exc
            console.print(f"queued {event_id}" + ("" if new else " (already in the outbox)"))

        def waiting(item: object, seconds: float) -> None:
            err_console.print(f"the intake is not answering; events are safe in the outbox, retrying in "
                              f"{seconds:.0f} s (Ctrl-C stops waiting, `referral-bus outbox --drain` resumes)")

        result = client.drain(deadline_s=timeout or None, on_retry=waiting)
    except ClientAuthError as exc:
        err_console.print(f"error: {exc}; events stay in the outbox")
        raise typer.Exit(4) from exc
    finally:
        client.close()
    _print_answers(box, [json.loads(b)["event_id"] for b in bodies])
    box.close()
    if result.pending:
        err_console.print(f"{result.pending} event(s) still pending; `referral-bus outbox --drain` sends them")
        raise typer.Exit(3)
    if result.rejected:
        raise typer.Exit(1)


def _print_answers(box: object, event_ids: list[str]) -> None:
    from bus.outbox import Outbox

    assert isinstance(box, Outbox)
    wanted = set(event_ids)
    for item in box.items():
        if item.event_id in wanted and item.status != "pending":
            console.print(f"{item.status} {item.event_id}: {item.answer}", soft_wrap=True, highlight=False)


def outbox(
    outbox: OutboxOpt = None,
    drain: Annotated[bool, typer.Option(help="Send what is pending (events and answers).")] = False,
    token: Annotated[str, typer.Option(envvar="REFERRAL_BUS_TOKEN", help="Agency token (with --drain).")] = "",
    url: UrlOpt = DEFAULT_URL,
    timeout: Annotated[float, typer.Option(help="With --drain: stop after this many seconds.")] = 60.0,
    show_all: Annotated[bool, typer.Option("--all", help="Also list sent events and answers.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per item (no event contents).")] = False,
) -> None:
    """Show what the outboxes hold (events to publish, answers to give; pending first), and
    optionally send it."""
    from bus.answering import all_answers_outboxes, answer_client, answers_outbox
    from bus.client import ClientAuthError, IntakeClient
    from bus.outbox import Outbox

    events = Outbox(_outbox_path(outbox))
    if drain:
        if not token:
            err_console.print("error: --drain needs --token or REFERRAL_BUS_TOKEN")
            raise typer.Exit(2)
        # The events, then the answers given with this token (each agency's answers are sent
        # with its own token only).
        for what, client in (("events", IntakeClient(url, token, events)),
                             ("answers", answer_client(url, token, answers_outbox(token)))):
            try:
                result = client.drain(deadline_s=timeout)
            except ClientAuthError as exc:
                err_console.print(f"error: {exc}")
                raise typer.Exit(4) from exc
            finally:
                client.close()
            console.print(f"{what}: sent {result.sent}, rejected {result.rejected}, pending {result.pending}")
    boxes = [("event", "", events), *(("answer", token_id, box) for token_id, box in all_answers_outboxes())]
    table = Table("kind", "id", "status", "attempts", "queued at", "next attempt", "last error / answer")
    table.columns[1].no_wrap = True
    for what, token_id, box in boxes:
        for item in box.items():
            if item.status == "sent" and not show_all:
                continue
            if as_json:
                sys.stdout.write(json.dumps({
                    "kind": what, "event_id" if what == "event" else "response_id": item.event_id,
                    **({"token_id": token_id} if token_id else {}),
                    "status": item.status, "attempts": item.attempts, "created_at": item.created_at.isoformat(),
                    "next_attempt_at": item.next_attempt_at.isoformat(), "last_error": item.last_error,
                    "answer": item.answer}) + "\n")
                continue
            table.add_row(f"{what} ({token_id})" if token_id else what, item.event_id, item.status,
                          str(item.attempts),
                          item.created_at.isoformat(timespec="seconds"),
                          item.next_attempt_at.isoformat(timespec="seconds") if item.status == "pending" else "",
                          (item.last_error or "") if item.status == "pending" else (item.answer or "")[:120])
    if not as_json:
        console.print(table)
        for what, token_id, box in boxes:
            counts = box.counts()
            console.print(f"{what}s{f' (token {token_id})' if token_id else ''}: pending {counts['pending']}, "
                          f"sent {counts['sent']}, rejected {counts['rejected']}")
    for _, _, box in boxes:
        box.close()


def deadletters(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per dead letter.")] = False,
    export: Annotated[Path | None, typer.Option(
        help="Write each original message to DIR/<partition>-<offset>.json, to fix and replay.")] = None,
) -> None:
    """List refused inbound messages: reason and failing fields (no contents unless --export)."""
    from services.intake.operator import read_dead_letters

    letters = asyncio.run(read_dead_letters(require_broker()))
    table = Table("partition:offset", "event_id", "reason", "fields", "received at")
    for letter in letters:
        if as_json:
            sys.stdout.write(letter.model_dump_json(exclude={"original_b64", "original_prefix_b64"}) + "\n")
        else:
            fields = "; ".join(f"{e['field']}: {e['reason']}" for e in letter.errors)
            table.add_row(f"{letter.partition}:{letter.offset}", letter.event_id or "-", letter.reason, fields,
                          letter.received_at.isoformat(timespec="seconds"))
        if export is not None and not letter.original_b64 and letter.original_prefix_b64 is not None:
            err_console.print(f"{letter.partition}:{letter.offset}: {letter.original_size} bytes, too large to keep "
                              f"(sha256 {letter.original_sha256}): not exported")
        elif export is not None:
            export.mkdir(parents=True, exist_ok=True)
            os.umask(0o077)  # originals may hold personal data: readable by the operator only
            (export / f"{letter.partition}-{letter.offset}.json").write_bytes(base64.b64decode(letter.original_b64))
    if not as_json:
        console.print(table)
        console.print(f"{len(letters)} dead letter(s)")


def replay(
    source: Annotated[str, typer.Argument(help="Fixed events: a JSON event, or JSON lines; '-' reads stdin.")],
) -> None:
    """Re-submit fixed events to the inbound topic (validated first, recorded in the audit trail)."""
    from services.intake.operator import replay_events

    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    stripped = text.strip()
    bodies = [stripped] if stripped.startswith("{") and "\n{" not in stripped else [
        line for line in text.splitlines() if line.strip()]
    problems, sent = asyncio.run(replay_events(require_broker(), [b.encode() for b in bodies]))
    for n, problem in problems:
        err_console.print(f"error: event {n} is still invalid: {problem}", soft_wrap=True)
    console.print(f"replayed {sent} event(s)")
    if problems:
        raise typer.Exit(2)


acl_app = typer.Typer(help="Kafka ACLs: which principal may read and write which topic.", no_args_is_help=True)


@acl_app.command("plan")
def acl_plan(
    path: Annotated[Path | None, typer.Option(help="ACL plan file (default deploy/acl.yaml).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per binding.")] = False,
) -> None:
    """Show every ACL binding the plan expands to."""
    from services.intake.acl import expand, load_plan

    bindings = expand(load_plan(path))
    if as_json:
        for b in bindings:
            sys.stdout.write(json.dumps(b.as_dict()) + "\n")
        return
    table = Table("principal", "operation", "resource", "name", "pattern")
    for b in bindings:
        table.add_row(b.principal, b.operation, b.resource, b.name, b.pattern)
    console.print(table)
    console.print(f"{len(bindings)} bindings")


@acl_app.command("apply")
def acl_apply(
    path: Annotated[Path | None, typer.Option(help="ACL plan file (default deploy/acl.yaml).")] = None,
) -> None:
    """Create the plan's ACLs on the broker (Apache Kafka with an authorizer; Tansu has none)."""
    from services.intake.acl import AclUnsupported, apply_plan, expand, load_plan

    bindings = expand(load_plan(path))
    try:
        created = asyncio.run(apply_plan(require_broker(), bindings))
    except AclUnsupported as exc:
        err_console.print(f"error: {exc}")
        raise typer.Exit(3) from exc
    console.print(f"created {created} ACL bindings")


def receipt(
    event_id: Annotated[str, typer.Argument(help="The event id `publish` printed.")],
    token: TokenOpt,
    url: UrlOpt = DEFAULT_URL,
    wait: Annotated[float, typer.Option(help="Wait up to this many seconds for the routing result.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="The receipt as JSON.")] = False,
) -> None:
    """An event's receipt, in Chinese: who was told, under which plan and article, by when; or why it
    was refused and what to fix. Exit 0 routed, 1 refused, 3 not routed yet, 4 not found."""
    import time

    import httpx

    from bus.presentation import receipt_lines_zh, receipt_view

    deadline = time.monotonic() + wait
    with httpx.Client(base_url=url.rstrip("/"), timeout=10.0,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        while True:
            try:
                r = http.get(f"/v1/events/{event_id}")
            except httpx.HTTPError as exc:
                err_console.print(f"error: the intake at {url} did not answer ({type(exc).__name__})")
                raise typer.Exit(3) from exc
            if r.status_code in (401, 404, 422):
                err_console.print(f"error: {r.json().get('error', {}).get('message', r.status_code)}")
                raise typer.Exit(4)
            view = receipt_view(r.json())
            if view["status"] in ("routed", "refused") or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
    if as_json:
        sys.stdout.write(json.dumps(view, ensure_ascii=False) + "\n")
    else:
        for line in receipt_lines_zh(view):
            console.print(line, soft_wrap=True, highlight=False)
    raise typer.Exit({"routed": 0, "refused": 1}.get(view["status"], 3))


def register(app: typer.Typer) -> None:
    """Register this issue's commands on the main CLI."""
    app.command("intake")(intake)
    app.command("intake-token")(intake_token)
    app.command("publish")(publish)
    app.command("outbox")(outbox)
    app.command("receipt")(receipt)
    app.command("deadletters")(deadletters)
    app.command("replay")(replay)
    app.add_typer(acl_app, name="acl")
