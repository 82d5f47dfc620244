"""`referral-bus`: the command line for users, rule maintainers and operators.

The composition root: the one module that imports every service, to mount each one's commands
beside the bus's own (`bus/cli.py`) and the rule maintainers' (`rules/cli.py`). Nothing else
imports more than one service; each command imports its service's code only when it runs.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from bus import cli as bus_cli
from bus import logging as bus_logging
from rules.cli import app as rules_app
from services.alerts import cli as alerts_cli
from services.broadcast import cli as broadcast_cli
from services.console import cli as console_cli
from services.delivery import cli as delivery_cli
from services.intake import cli as intake_cli
from services.report import cli as report_cli
from services.router import cli as router_cli


def demo(
    keep_broker: Annotated[bool, typer.Option(help="Leave the local broker and router running.")] = False,
) -> None:
    """Start a local broker (unless KAFKA_BOOTSTRAP_SERVERS is set), the router, and a scripted demo."""
    from services.demo import run_demo

    bus_logging.configure(json=False, level="WARNING")
    console = Console()
    # Off a terminal (CI, a pipe) rich would wrap the referral table at 80 columns.
    wide = console if console.is_terminal else Console(width=170)
    raise typer.Exit(run_demo(wide, keep_broker=keep_broker))


def compose() -> typer.Typer:
    """The `referral-bus` app: the bus's commands, the rules', and each service's."""
    app = typer.Typer(help="Referral and alert bus for anti-trafficking work.", no_args_is_help=True,
                      add_completion=False)
    bus_cli.register(app)
    app.add_typer(rules_app, name="rules", help="Lint, show and compare rule packs.")
    for service in (router_cli, delivery_cli, intake_cli, broadcast_cli, alerts_cli, report_cli, console_cli):
        service.register(app)
    app.command()(demo)
    return app


app = compose()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
