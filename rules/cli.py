"""`referral-bus rules …`: tools for the people who maintain the rule packs.

* `lint` — every problem, one line each; exit 1 if any.
* `show JURISDICTION` — the effective pack after inheritance, kind by kind.
* `diff J1 J2` — two jurisdictions compared situation by situation.
* `coverage` — per plan text, the clauses that assign a duty: routed by which rule, or why not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rules.catalog import catalog
from rules.engine import RuleBook, Slot, Variant, load_rulebook
from rules.errors import PackError

app = typer.Typer(help="Rule packs: lint, show, diff, coverage.", no_args_is_help=True)

PacksOpt = Annotated[Path | None, typer.Option("--packs", help="Folder of rule packs.")]


def _console() -> Console:
    return Console(width=200, soft_wrap=False)


def _book(packs: Path | None) -> RuleBook:
    try:
        return load_rulebook(packs)
    except PackError as exc:
        for line in exc.problems:
            typer.echo(line, err=True)
        raise typer.Exit(1) from exc


def _check_jurisdiction(book: RuleBook, code: str) -> None:
    if code not in book.chains:
        typer.echo(f"unknown jurisdiction {code!r} (known: {', '.join(sorted(book.chains))})",
                   err=True)
        raise typer.Exit(2)


def _when(v: Variant) -> str:
    parts = [c.text for c in v.all]
    if v.any:
        parts.append("any(" + " | ".join(c.text for c in v.any) + ")")
    if v.scope is not None:
        parts.append(f"scope: {v.scope.description}")
    return "; ".join(parts) or "-"


def _who(v: Variant) -> str:
    lead = "+".join(v.lead) if v.lead else "TRIAGE(" + ",".join(v.candidate_lead) + ")"
    coop = ",".join(v.cooperating)
    return f"L={lead}" + (f" C={coop}" if coop else "")


def _cite(v: Variant) -> str:
    return f"{v.pack} [{v.citation.file[:3]}] {v.citation.clause}"


@app.command()
def lint(
    packs: PacksOpt = None,
    seeds: Annotated[Path | None, typer.Option(
        "--seeds", help="Folder of plan texts (default: $REFERRAL_BUS_SEEDS_DIR or "
                        "../shared/seeds beside the repository).")] = None,
) -> None:
    """Check every pack: vocabulary, overrides, verbatim quotes, reachable rules."""
    from rules.lint import lint as run_lint

    problems = run_lint(packs, seeds)
    for p in problems:
        typer.echo(str(p))
    if problems:
        typer.echo(f"{len(problems)} problem(s)", err=True)
        raise typer.Exit(1)
    book = load_rulebook(packs)
    typer.echo(f"ok: {len(book.packs)} packs, {book.rule_count} rules")


@app.command()
def show(jurisdiction: str, packs: PacksOpt = None) -> None:
    """The effective pack of JURISDICTION after inheritance: for each event kind, each rule in
    evaluation order, with the versions it falls through to."""
    book = _book(packs)
    _check_jurisdiction(book, jurisdiction)
    cat = catalog()
    table = Table(title=f"{jurisdiction}: {' -> '.join(book.chains[jurisdiction])}",
                  show_lines=False)
    for col in ("kind", "rule", "when", "who", "urgency", "clause"):
        table.add_column(col, overflow="fold")
    for kind in book.kinds(jurisdiction):
        for slot in book.slots(jurisdiction, kind):
            for i, v in enumerate(slot.variants):
                table.add_row(kind if i == 0 else "", v.rule_id if i == 0 else f"  ↳ {v.rule_id}",
                              _when(v), _who(v), v.urgency, _cite(v))
    _console().print(table)
    t = book.triage[jurisdiction]
    expired = [c for c in book.chains[jurisdiction]
               if cat.jurisdictions[c].period.end < cat.jurisdictions[jurisdiction].period.start]
    typer.echo(f"unrouted events -> {t.agency} ({t.urgency}), per {t.pack} {t.citation.clause}")
    if expired:
        typer.echo(f"expired plans in the chain: {', '.join(expired)}")


def _summary(slots: tuple[Slot, ...]) -> list[str]:
    out = []
    for slot in slots:
        v = slot.variants[0]
        line = f"{slot.key}: {_who(v)} [{v.urgency}]"
        when = _when(v)
        if when != "-":
            line += f" when {when}"
        if len(slot.variants) > 1:
            line += f" (else {slot.variants[1].pack})"
        out.append(f"{line} — {_cite(v)}")
    return out


def _signature(slots: tuple[Slot, ...]) -> set[tuple[str, ...]]:
    return {(s.key, *s.variants[0].lead, "|", *s.variants[0].cooperating, s.variants[0].urgency,
             _when(s.variants[0]).replace("scope: ", "")) for s in slots}


@app.command()
def diff(j1: str, j2: str, packs: PacksOpt = None,
         all_kinds: Annotated[bool, typer.Option("--all", help="Also list identical kinds.")]
         = False) -> None:
    """Compare J1 and J2 situation by situation (event kind): who leads, who cooperates, how
    fast, under which conditions, and from which clause."""
    book = _book(packs)
    _check_jurisdiction(book, j1)
    _check_jurisdiction(book, j2)
    kinds = sorted(set(book.kinds(j1)) | set(book.kinds(j2)))
    table = Table(title=f"{j1} vs {j2}", show_lines=True)
    table.add_column("kind", overflow="fold")
    table.add_column(j1, overflow="fold")
    table.add_column(j2, overflow="fold")
    same = 0
    for kind in kinds:
        a, b = book.slots(j1, kind), book.slots(j2, kind)
        if _signature(a) == _signature(b):
            same += 1
            if not all_kinds:
                continue
        table.add_row(kind, "\n".join(_summary(a)) or "— (triage)",
                      "\n".join(_summary(b)) or "— (triage)")
    _console().print(table)
    typer.echo(f"{len(kinds)} kinds; {same} routed alike, {len(kinds) - same} differ")


@app.command()
def coverage(
    packs: PacksOpt = None,
    seeds: Annotated[Path | None, typer.Option(
        "--seeds", help="Folder of plan texts (default: $REFERRAL_BUS_SEEDS_DIR or "
                        "../shared/seeds beside the repository).")] = None,
    jurisdiction: Annotated[str | None, typer.Option(
        "--jurisdiction", "-j", help="Only this plan (e.g. yunyang).")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="Only the figures per plan.")]
    = False,
) -> None:
    """Per plan text: every clause that assigns a duty (names a unit with 负责/配合/要/应当 … or
    carries an (X负责, Y配合) tag), the rules that route it, or the reason none does. Exit 1 if
    a duty clause is neither routed nor explained (rules/coverage.py says how clauses are found)."""
    from rules.coverage import coverage as compute
    from rules.engine import load_packs
    from rules.seeds import default_seeds_dir

    folder = seeds if seeds is not None else default_seeds_dir()
    try:
        loaded = load_packs(packs)
    except PackError as exc:
        for line in exc.problems:
            typer.echo(line, err=True)
        raise typer.Exit(1) from exc
    if jurisdiction is not None and jurisdiction not in loaded:
        typer.echo(f"unknown jurisdiction {jurisdiction!r}", err=True)
        raise typer.Exit(2)
    results = [c for c in compute(loaded, folder)
               if jurisdiction is None or c.jurisdiction == jurisdiction]
    problems = 0
    for cov in results:
        typer.echo(f"{cov.jurisdiction} ({cov.seed}): {len(cov.duty_clauses)} clauses assign a "
                   f"duty; {len(cov.covered)} routed, {len(cov.not_routed)} not routed with a "
                   f"reason, {len(cov.unexplained)} unexplained")
        problems += len(cov.problems)
        if summary:
            continue
        for c in cov.duty_clauses:
            units = ",".join(c.units)
            if c.covered:
                typer.echo(f"  routed      {c.label:24} {', '.join(c.rules)}  [{units}]")
            elif c.reason:
                typer.echo(f"  not routed  {c.label:24} {c.reason}")
            else:
                typer.echo(f"  UNEXPLAINED {c.label:24} [{units}] {c.text[:60]}")
        for c in cov.covered_without_duty:
            typer.echo(f"  routed*     {c.label:24} {', '.join(c.rules)}  (names no unit with a "
                       "duty word: the units come from the parent plan)")
        for p in cov.reason_problems:
            typer.echo(f"  problem: {p}")
    if problems:
        typer.echo(f"{problems} problem(s)", err=True)
        raise typer.Exit(1)
