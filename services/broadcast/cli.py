"""`referral-bus broadcast`: the public-broadcast service, mounted on the CLI by `services/cli.py`."""

from __future__ import annotations

import typer

from bus import logging as bus_logging
from bus.cli import require_broker


def broadcast() -> None:
    """Run the public-broadcast service: CAP 1.2 to media, apps and outdoor screens, and the CAP feed.

    Uses KAFKA_BOOTSTRAP_SERVERS; REFERRAL_BUS_BROADCAST_* settings (config file, feed and metrics ports).
    """
    from services.broadcast.app import run

    require_broker()
    bus_logging.configure(json=True)
    run()


def register(app: typer.Typer) -> None:
    app.command()(broadcast)
