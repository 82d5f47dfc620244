"""The bus's own commands (rules dry run, topic catalog, schemas, the embedded broker), mounted on
`referral-bus` by the composition root `services/cli.py` beside each service's commands."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from bus.contract_cli import app as contract_app
from bus.settings import KafkaSettings

topics_app = typer.Typer(help="The topic catalog.", no_args_is_help=True)
schemas_app = typer.Typer(help="The published JSON Schemas.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Mount the bus's own commands (no service's) on the `referral-bus` CLI (`services/cli.py`)."""
    app.add_typer(topics_app, name="topics")
    app.add_typer(schemas_app, name="schemas")
    app.add_typer(contract_app, name="contract")
    app.command()(route)
    app.command()(broker)


def require_broker() -> KafkaSettings:
    """The Kafka settings of a command that needs a broker; exit 2 with a clear line when none is set."""
    settings = KafkaSettings()
    if not settings.bootstrap_servers:
        err_console.print("error: KAFKA_BOOTSTRAP_SERVERS is not set (e.g. 127.0.0.1:9092)")
        raise typer.Exit(2)
    return settings


def _read_events(source: str) -> list[tuple[int, str]]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("{") and "\n{" not in stripped:
        return [(1, stripped)]
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def route(
    source: Annotated[str, typer.Argument(help="A JSON event, or JSON lines; '-' reads stdin.")],
    explain: Annotated[bool, typer.Option("--explain", help="Show the packs and rules considered.")] = False,
) -> None:
    """Dry run: validate events and print one JSON line per referral (deterministic order)."""
    from rules.deadlines import Deadlines
    from rules.engine import explain as explain_event
    from rules.engine import load_rulebook
    from rules.engine import route as route_event
    from rules.explain import render_explanation
    from schemas.errors import field_errors, summary
    from schemas.events import parse_event

    try:
        lines = _read_events(source)
    except OSError as exc:
        err_console.print(f"error: cannot read {source}: {exc.strerror}")
        raise typer.Exit(2) from exc
    events = []
    for number, line in lines:
        try:
            events.append(parse_event(line))
        except ValidationError as exc:
            where = f"line {number}: " if len(lines) > 1 else ""
            err_console.print(f"error: {where}invalid event: {summary(field_errors(exc))}", soft_wrap=True)
            raise typer.Exit(2) from exc
    book, deadlines = load_rulebook(), Deadlines.load()
    for event in events:
        if explain:
            sys.stdout.write(render_explanation(explain_event(event, book)) + "\n")
        for referral in route_event(event, book, deadlines=deadlines):
            sys.stdout.write(referral.model_dump_json() + "\n")


@topics_app.command("list")
def topics_list() -> None:
    """Show every topic of the catalog (names are never cut: copy them into a client)."""
    from topics.catalog import all_topics, gate_agency

    topics = all_topics()
    families: dict[str, list[str]] = {}
    table = Table("topic", "value", "key", "partitions", "days", "cleanup", box=None, pad_edge=False)
    table.columns[0].no_wrap = True
    for column in table.columns[1:]:
        column.overflow = "fold"
    for t in topics:
        shown = t.name
        family = ("referrals.<agency>" if t.value == "Referral" else
                  f"agency.<agency>.{t.name.rsplit('.', 1)[1]}" if gate_agency(t.name) else None)
        if family is not None:  # one row for the family; every name listed below it
            shown = family
            families.setdefault(shown, []).append(t.name)
            if len(families[shown]) > 1:
                continue
        table.add_row(shown, t.value, t.key, str(t.partitions), str(t.retention_ms // 86_400_000), t.cleanup)
    console.print(table)
    for family, names in families.items():
        console.print(f"\n{family}, one topic per agency ({len(names)}):")
        for name in names:
            console.print(f"  {name}", no_wrap=True, crop=False, soft_wrap=True)


@topics_app.command("create")
def topics_create() -> None:
    """Create every catalog topic the broker lacks (idempotent). Uses KAFKA_BOOTSTRAP_SERVERS."""
    from bus.kafka.admin import create_topics

    settings = require_broker()
    applied = asyncio.run(create_topics(settings))
    console.print(f"created {len(applied.created)} topics, {len(applied.existing)} already existed")


@schemas_app.command("export")
def schemas_export() -> None:
    """Write the published contract: the JSON Schemas, the AsyncAPI document, docs/topics.md."""
    from bus.contract_cli import export

    export()


def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 9092,
) -> None:
    """Run the embedded local broker (Tansu, memory storage) with every topic, until Ctrl-C."""
    import signal
    import time

    from bus.kafka.admin import create_topics
    from bus.local_broker import LocalBroker, free_port

    def stop_on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_term)  # so a service manager's stop also stops Tansu
    local = LocalBroker(port=port or free_port()).start()
    try:
        applied = asyncio.run(create_topics(KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=local.bootstrap)))
        console.print(f"Tansu on {local.bootstrap}: {len(applied.created)} topics created. "
                      f"export KAFKA_BOOTSTRAP_SERVERS={local.bootstrap}   (Ctrl-C stops it; memory only)")
        while local.process is not None and local.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        local.stop()
