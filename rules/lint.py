"""`referral-bus rules lint`: every check on the packs, one line per problem.

Fails on: a pack that does not load (unknown agency, event kind, urgency or field; override of a
key no parent has; a unit no quote names; …), a quote that is not verbatim in the cited clause of
the plan text, a naming quote that does not contain the unit's name as the plan writes it, an
`action_zh` that is not the clause's own words, a rule no event can reach (contradictory
conditions, values outside a field's domain, conditions that contradict the pack's scope or the
event kind's own model), and a clause of a plan that assigns a duty that no rule routes and
`not_routed` does not explain (rules/coverage.py).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules.catalog import catalog
from rules.coverage import names_unit, seed_coverage
from rules.deadlines import Deadlines
from rules.engine import DEFAULT_PACKS_DIR, compile_packs, load_packs
from rules.errors import PackError, RulesError
from rules.model import Condition, Pack, Rule, Source
from rules.projection import load_projections
from rules.seeds import SeedError, load_seed, normalise
from schemas.events import Disability, Sex, Wish

_BOOL_FIELDS = frozenset({
    "person.is_child", "person.is_foreign", "person.willing_to_return_home",
    "person.cannot_or_will_not_return_home", "person.willing_to_train", "person.poor",
    "person.coerced", "person.adopted", "person.origin_unknown", "person.parents_found",
    "exercise", "guardian_consent",
})
_ENUMS: dict[str, frozenset[Any]] = {
    "person.sex": frozenset(typing.get_args(Sex)),
    "person.disability": frozenset(typing.get_args(Disability)),
    "person.wishes": frozenset(typing.get_args(Wish)),
}
_AGE_RANGE = (0, 130)
#: Limits the event model itself puts on a kind (MissingChildReport: under 18).
_KIND_AGE_MAX = {"child_missing_reported": 17}


@dataclass(frozen=True)
class Problem:
    """One lint finding, printed as one line."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


# ---------------------------------------------------------------------------- reachability


def _domain_problem(c: Condition) -> str | None:
    """Why a single condition can never match, or None."""
    values = c.value if c.op in ("in", "not_in") else [c.value]
    if c.field in _BOOL_FIELDS and c.op in ("eq", "ne", "in", "not_in") and any(
            not isinstance(v, bool) for v in values):
        return f"{c.describe()}: {c.field} is true or false"
    enum = _ENUMS.get(c.field)
    if enum is not None and c.op in ("eq", "in", "contains") and not any(
            v in enum for v in values):
        return f"{c.describe()}: no such value (allowed: {', '.join(sorted(enum))})"
    if enum is not None and c.op == "not_in" and enum <= set(values):
        return f"{c.describe()}: excludes every value"
    if c.field == "person.age" and c.op in ("lt", "le", "gt", "ge", "eq"):
        lo, hi = _AGE_RANGE
        v = c.value
        if ((c.op == "lt" and v <= lo) or (c.op == "le" and v < lo)
                or (c.op == "gt" and v >= hi) or (c.op == "ge" and v > hi)
                or (c.op == "eq" and not lo <= v <= hi)):
            return f"{c.describe()}: outside ages {lo}-{hi}"
    return None


def _satisfiable(conds: Iterable[Condition], kinds: Iterable[str] = ()) -> str | None:
    """None if some event can meet all the conditions (with known values), else why not."""
    conds = list(conds)
    for c in conds:
        why = _domain_problem(c)
        if why:
            return why
    by_field: dict[str, list[Condition]] = {}
    for c in conds:
        by_field.setdefault(c.field, []).append(c)
    kind_max = min((_KIND_AGE_MAX.get(k, _AGE_RANGE[1]) for k in kinds), default=_AGE_RANGE[1])
    for fld, cs in by_field.items():
        allowed: set[Any] | None = None
        banned: set[Any] = set()
        lo, hi = float(_AGE_RANGE[0]), float(kind_max if fld == "person.age" else 10**9)
        for c in cs:
            if c.op == "eq":
                allowed = {c.value} if allowed is None else allowed & {c.value}
            elif c.op == "in":
                allowed = set(c.value) if allowed is None else allowed & set(c.value)
            elif c.op == "ne":
                banned.add(c.value)
            elif c.op == "not_in":
                banned |= set(c.value)
            elif c.op == "ge":
                lo = max(lo, c.value)
            elif c.op == "gt":
                lo = max(lo, c.value + 1 if isinstance(c.value, int) else c.value)
            elif c.op == "le":
                hi = min(hi, c.value)
            elif c.op == "lt":
                hi = min(hi, c.value - 1 if isinstance(c.value, int) else c.value)
        if allowed is not None:
            allowed -= banned
            if fld == "person.age":
                allowed = {v for v in allowed if lo <= v <= hi}
            if not allowed:
                return f"conditions on {fld} exclude every value"
        if fld == "person.age" and lo > hi:
            return f"conditions on {fld} exclude every age"
        if fld in _BOOL_FIELDS and allowed is None and {True, False} <= banned:
            return f"conditions on {fld} exclude both true and false"
    return _derived_conflict(by_field, kind_max)


def _derived_conflict(by_field: Mapping[str, list[Condition]], kind_max: int) -> str | None:
    """is_child is age < 18: the two must agree."""
    child = [c for c in by_field.get("person.is_child", []) if c.op == "eq"]
    if not child:
        return None
    want = child[0].value
    lo, hi = 0.0, float(kind_max)
    for c in by_field.get("person.age", []):
        if c.op in ("ge", "gt"):
            lo = max(lo, c.value + (1 if c.op == "gt" else 0))
        if c.op in ("le", "lt"):
            hi = min(hi, c.value - (1 if c.op == "lt" else 0))
    if want is True and lo >= 18:
        return "person.is_child is true but person.age is 18 or more"
    if want is False and hi < 18:
        return "person.is_child is false but person.age is under 18"
    return None


def unreachable(rule: Rule, pack: Pack, resolved_when: Any) -> str | None:
    """Why no event can reach this rule version, or None."""
    when = rule.when or resolved_when
    if when is None:
        return None
    kinds = list(when.kind)
    why = _satisfiable(when.all, kinds)
    if why:
        return why
    if when.any and all(_satisfiable([*when.all, c], kinds) for c in when.any):
        return "no condition of 'any' can match together with 'all'"
    if pack.scope is not None:
        constrained = {c.field for c in when.all}
        ok = any(
            (s.if_unknown == "match" and s.field not in constrained)
            or _satisfiable([*when.all, s], kinds) is None
            for s in pack.scope.any)
        if not ok:
            return f"conditions put every event outside the pack's scope ({pack.scope.description})"
    return None


# ---------------------------------------------------------------------------------- quotes


def _sources(pack: Pack) -> list[tuple[str, Source]]:
    out: list[tuple[str, Source]] = []
    for r in pack.rules:
        out.append((f"rule {r.key}", r.source))
        out.extend((f"rule {r.key} also_cited", s) for s in r.also_cited)
    out.extend((f"constraint {c.id}", c.source) for c in pack.constraints)
    if pack.scope:
        out.append(("scope", pack.scope.source))
    if pack.triage:
        out.append(("triage", pack.triage.source))
    return out


def quote_problems(pack: Pack, seeds_dir: Path) -> list[Problem]:
    """Every cited quote must lie within the cited clause of the plan text; every naming quote
    must also contain the name of its unit; `action_zh` must be the clause's own words."""
    out: list[Problem] = []
    for where, s in _sources(pack):
        loc = f"{pack.jurisdiction}.yaml: {where}"
        try:
            seed = load_seed(seeds_dir, s.file)
            if not seed.quote_in_clause(s.quote, s.clause):
                out.append(Problem(loc, f"quote not in {s.file} {s.clause}: {s.quote!r}"))
        except SeedError as exc:
            out.append(Problem(loc, str(exc)))
    if pack.triage is not None and not names_unit(pack.triage.source.quote, pack.triage.agency):
        out.append(Problem(f"{pack.jurisdiction}.yaml: triage",
                           f"quote does not name {pack.triage.agency} "
                           f"({', '.join(catalog().agencies[pack.triage.agency].names)})"))
    for rule in pack.rules:
        out.extend(_naming_problems(pack, rule, seeds_dir))
        out.extend(_action_zh_problems(pack, rule, seeds_dir))
    return out


def _naming_problems(pack: Pack, rule: Rule, seeds_dir: Path) -> list[Problem]:
    out: list[Problem] = []
    for code, n in rule.names.items():
        loc = f"{pack.jurisdiction}.yaml: rule {rule.key} names.{code}"
        cited = n.cited_in(rule.source)
        file, clause = cited.file, cited.clause
        try:
            if not load_seed(seeds_dir, file).quote_in_clause(n.quote, clause):
                out.append(Problem(loc, f"quote not in {file} {clause}: {n.quote!r}"))
                continue
        except SeedError as exc:
            out.append(Problem(loc, str(exc)))
            continue
        if not names_unit(n.quote, code):
            names = "、".join(catalog().agencies[code].names) or "(no names in the catalog)"
            out.append(Problem(loc, f"quote does not name {code} as the plan writes it "
                                    f"({names}): {n.quote!r}"))
    units = {*(rule.lead or ()), *(rule.cooperating or ()), *rule.candidate_lead}
    for code in rule.names:
        # An override may re-name an inherited unit with its own plan's words.
        if code not in units and not rule.override:
            out.append(Problem(f"{pack.jurisdiction}.yaml: rule {rule.key} names.{code}",
                               "names a unit that is neither lead nor cooperating"))
    return out


def _action_zh_problems(pack: Pack, rule: Rule, seeds_dir: Path) -> list[Problem]:
    """`action_zh` is the clause's own words: each fragment (split at ； or …) lies verbatim in
    the rule's source clause or one of its also_cited clauses."""
    if rule.action_zh is None:
        return []
    texts = []
    for s in (rule.source, *rule.also_cited):
        try:
            texts.append(normalise(load_seed(seeds_dir, s.file).clause_text(s.clause)))
        except SeedError:
            continue
    out = []
    for fragment in re.split(r"[；…]+", rule.action_zh):
        if fragment and not any(normalise(fragment) in t for t in texts):
            out.append(Problem(f"{pack.jurisdiction}.yaml: rule {rule.key} action_zh",
                               f"not the clause's own words: {fragment!r}"))
    return out


# ------------------------------------------------------------------------------------ lint


def lint(packs_dir: Path | None = None, seeds_dir: Path | None = None) -> list[Problem]:
    """Every problem with the packs in `packs_dir`, quotes checked against `seeds_dir`."""
    from rules.seeds import default_seeds_dir

    folder = Path(packs_dir) if packs_dir is not None else DEFAULT_PACKS_DIR
    seeds = Path(seeds_dir) if seeds_dir is not None else default_seeds_dir()
    problems: list[Problem] = []
    for name, check in (("deadlines.yaml", Deadlines.load), ("projections.yaml", load_projections)):
        try:
            check()
        except RulesError as exc:
            problems.append(Problem(name, str(exc)))
    try:
        packs = load_packs(folder)
    except PackError as exc:
        return problems + [Problem(*_split(p)) for p in exc.problems]
    try:
        compile_packs(packs)
    except PackError as exc:
        problems.extend(Problem(*_split(p)) for p in exc.problems)
    if not seeds.is_dir():
        problems.append(Problem("seeds", f"plan texts not found at {seeds} (set --seeds or "
                                         "REFERRAL_BUS_SEEDS_DIR)"))
    for code in sorted(packs):
        pack = packs[code]
        if seeds.is_dir():
            problems.extend(quote_problems(pack, seeds))
            if pack.seed is not None:
                problems.extend(Problem(*_split(p)) for p in seed_coverage(pack, seeds).problems)
        for rule in pack.rules:
            resolved = _resolved_when(code, rule.key, packs)
            why = unreachable(rule, pack, resolved)
            if why:
                problems.append(Problem(f"{code}.yaml: rule {rule.key}",
                                        f"no event can reach it: {why}"))
    return problems


def _resolved_when(code: str, key: str, packs: Mapping[str, Pack]) -> Any:
    parent = packs[code].parent
    while parent is not None and parent in packs:
        for r in packs[parent].rules:
            if r.key == key and r.when is not None:
                return r.when
        parent = packs[parent].parent
    return None


def _split(line: str) -> tuple[str, str]:
    where, sep, message = line.partition(": ")
    return (where, message) if sep else ("packs", line)
