"""`referral-bus report`: the annual report of one jurisdiction, as Markdown, CSV and PNG."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bus.settings import KafkaSettings

console = Console()
err_console = Console(stderr=True)


def report(
    jurisdiction: Annotated[str, typer.Option(help="Jurisdiction code, e.g. xian.")],
    year: Annotated[int, typer.Option(help="Calendar year of the referrals' reported_at (China Standard Time).")],
    out: Annotated[Path, typer.Option(help="Folder for report-<jurisdiction>-<year>.{md,csv,png}.")] = Path("."),
) -> None:
    """Annual report (西安 第十二条): per member unit, referrals by situation, answers on time, escalations."""
    from rules.catalog import catalog
    from services.report.compute import applied_answers, compute
    from services.report.reader import read_topics
    from services.report.render import write_all

    if jurisdiction not in catalog().jurisdictions:
        err_console.print(f"error: unknown jurisdiction {jurisdiction!r}")
        raise typer.Exit(2)
    settings = KafkaSettings()
    if not settings.bootstrap_servers:
        err_console.print("error: KAFKA_BOOTSTRAP_SERVERS is not set (e.g. 127.0.0.1:9092)")
        raise typer.Exit(2)
    data = asyncio.run(read_topics(settings, err_console))
    result = compute(data.referrals, applied_answers(data.states), data.escalations, jurisdiction, year,
                     alerts=data.alerts, states=data.states, cases=data.cases)
    paths = write_all(result, out)
    for topic, n in sorted(data.undecodable.items()):
        err_console.print(f"warning: {n} undecodable messages on {topic} (skipped)")
    console.print(f"{result.referrals} referrals ({result.drills} drills excluded, "
                  f"{result.duplicates_dropped} copies dropped) for {jurisdiction} {year}")
    for path in paths.values():
        console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
