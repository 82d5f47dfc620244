"""`referral-bus router`: the router worker, mounted on the CLI by `services/cli.py`."""

from __future__ import annotations

import typer

from bus import logging as bus_logging
from bus.cli import require_broker


def router() -> None:
    """Run the router worker (faust). Uses KAFKA_BOOTSTRAP_SERVERS."""
    from services.router.app import run

    require_broker()
    bus_logging.configure(json=True)
    run()


def register(app: typer.Typer) -> None:
    app.command()(router)
