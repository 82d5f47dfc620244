"""`referral-bus broadcast`: mounted by the bus CLI (`_mount_subcommands`)."""

from __future__ import annotations

import typer

from bus import logging as bus_logging
from bus.settings import KafkaSettings


def broadcast() -> None:
    """Run the public-broadcast service: CAP 1.2 to media, apps and outdoor screens, and the CAP feed.

    Uses KAFKA_BOOTSTRAP_SERVERS; REFERRAL_BUS_BROADCAST_* settings (config file, feed and metrics ports).
    """
    from services.broadcast.app import run

    if not KafkaSettings().bootstrap_servers:
        typer.echo("error: KAFKA_BOOTSTRAP_SERVERS is not set (e.g. 127.0.0.1:9092)", err=True)
        raise typer.Exit(2)
    bus_logging.configure(json=True)
    run()
