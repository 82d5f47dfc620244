"""`referral-bus contract`: the published contract — generate it, and check messages against it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="The published contract: AsyncAPI, JSON Schemas, topic reference; conformance checks.",
                  no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


@app.command("export")
def export() -> None:
    """Write the JSON Schemas (schemas/json/), the AsyncAPI document and docs/topics.md, and warn
    when the contract's history (schemas/contract-history.yaml) does not record the contract."""
    from topics.contract_history import HistoryError

    try:
        for path in export_all():
            console.print(f"wrote {path}")
        problems = history_problems()
    except HistoryError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    for problem in problems:
        err_console.print(f"warning: {problem}", markup=False, highlight=False, soft_wrap=True)


@app.command("digest")
def digest(
    history: Annotated[Path | None, typer.Option(help="The history file (default: schemas/contract-history.yaml, "
                                                      "whose last entry the document's version is).")] = None,
) -> None:
    """Print the digest of the contract as the code generates it, and say whether the last entry of
    the contract's history records it. Exit 0: it does; 1: the history is behind (the entry to add
    is printed); 2: the history cannot be read."""
    from topics import asyncapi, contract_history

    path = history or contract_history.HISTORY_PATH
    sys.stdout.write(asyncapi.digest() + "\n")
    try:
        last = contract_history.load(path).current
        problems = history_problems(path)
    except contract_history.HistoryError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    for problem in problems:
        err_console.print(problem, markup=False, highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    err_console.print(f"the contract is version {last.version} ({last.date}) of {path.name}",
                      markup=False, highlight=False)


def history_problems(path: Path | None = None) -> list[str]:
    """What keeps the contract's history from naming the contract the code generates now."""
    from schemas.contract import published
    from topics import asyncapi, contract_history

    path = path or contract_history.HISTORY_PATH
    return contract_history.problems(contract_history.load(path), asyncapi.digest(),
                                     max(p.major for p in published().values()), path)


def export_all() -> list[Path]:
    """Every generated contract document, written from the catalog and the models."""
    from schemas.contract import export as export_schemas
    from topics import asyncapi, reference

    written = export_schemas()
    written.append(asyncapi.export())
    written.append(reference.export(asyncapi.document()))
    return written


@app.command("check")
def check(
    source: Annotated[str, typer.Argument(help="JSON lines or a JSON array of messages; '-' reads stdin.")],
    topic: Annotated[str, typer.Option(help="The topic the messages are for.")] = "events.inbound",
    contract: Annotated[Path | None, typer.Option(help="A directory holding asyncapi.yaml and json/ "
                                                       "(default: the contract of this installation).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per message.")] = False,
) -> None:
    """Check messages against the published contract, offline. Exit 0: all conform; 1: some do
    not (each failing field and why); 2: the input or the topic cannot be read."""
    from topics.conformance import CONTRACT_DIR, Contract, ContractError, check_text

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        published = Contract(contract or CONTRACT_DIR)
        results = check_text(published, topic, text)
        unchecked = published.unchecked_rules(topic)
    except (OSError, UnicodeDecodeError, ContractError) as exc:
        err_console.print(f"error: {exc}")
        raise typer.Exit(2) from exc
    for r in results:
        if as_json:
            sys.stdout.write(json.dumps({"position": r.position, "ok": r.ok,
                                         "errors": [{"field": f, "reason": why} for f, why in r.errors]}) + "\n")
        elif r.ok:
            console.print(f"{r.position}: ok")
        else:
            console.print(f"{r.position}: " + "; ".join(f"{f}: {why}" for f, why in r.errors), soft_wrap=True,
                          markup=False, highlight=False)
    bad = sum(not r.ok for r in results)
    if not as_json:
        err_console.print(f"{len(results) - bad} of {len(results)} messages conform to {topic}"
                          + (f" (rules not checked here: {', '.join(unchecked)})" if unchecked else ""))
    raise typer.Exit(1 if bad else 0)
