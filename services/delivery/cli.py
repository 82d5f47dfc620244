"""`referral-bus tail`: one agency's referrals as they arrive, mounted on the CLI by `services/cli.py`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from bus import logging as bus_logging
from bus.cli import require_broker
from bus.settings import StateSettings


def tail(
    agency: Annotated[str, typer.Option(help="Agency code, e.g. police or police.command_center.")],
    follow: Annotated[bool, typer.Option(help="Keep waiting for new referrals.")] = True,
    idle_exit: Annotated[float, typer.Option(help="With --no-follow, stop after this many idle seconds.")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per referral.")] = False,
) -> None:
    """Print referrals for one agency as they arrive (its own consumer group; copies dropped by id)."""
    from services.delivery.tail import tail_agency

    settings = require_broker()
    bus_logging.configure(json=False)
    asyncio.run(tail_agency(settings, StateSettings(), agency, follow=follow, idle_exit=idle_exit,
                            as_json=as_json, console=Console()))


def register(app: typer.Typer) -> None:
    app.command()(tail)
