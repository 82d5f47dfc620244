"""`referral-bus console` and `console-officer`, registered on the CLI by `services/cli.py`."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
import yaml
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def console_command(
    host: Annotated[str | None, typer.Option(help="Bind address (default REFERRAL_BUS_CONSOLE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default REFERRAL_BUS_CONSOLE_PORT, 8104).")] = None,
) -> None:
    """Run the duty console: live board, alert cards, answers, worklists, reporter form (HTTP 8104)."""
    from bus import logging as bus_logging
    from bus.settings import KafkaSettings
    from services.console.app import run

    if not KafkaSettings().bootstrap_servers:
        err_console.print("error: KAFKA_BOOTSTRAP_SERVERS is not set (e.g. 127.0.0.1:9092)")
        raise typer.Exit(2)
    bus_logging.configure(json=True)
    run(host, port)


def console_officer(
    officer_id: Annotated[str, typer.Argument(help="Sign-in name, e.g. cc-wang.")],
    name: Annotated[str, typer.Option(help="The name answers record, e.g. 王明.")],
    agency: Annotated[str, typer.Option(help="Agency code, e.g. police.command_center.")],
    jurisdiction: Annotated[list[str] | None, typer.Option(
        help="Only this jurisdiction's work (repeat for several; none: all of the agency's).")] = None,
) -> None:
    """Make an officer's entry for the console's officers file (asks for the password)."""
    from services.console.auth import officer_entry

    password = getpass.getpass("password: ")
    if len(password) < 10:
        err_console.print("error: use at least 10 characters")
        raise typer.Exit(2)
    try:
        entry = officer_entry(officer_id, name, agency, password, tuple(jurisdiction) if jurisdiction else None)
    except ValueError as exc:
        err_console.print(f"error: {exc}")
        raise typer.Exit(2) from exc
    data = entry.model_dump(exclude_none=True)
    console.print(yaml.safe_dump([data], allow_unicode=True, sort_keys=False), soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("console")(console_command)
    app.command("console-officer")(console_officer)
