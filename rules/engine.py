"""The routing engine: rule packs compiled once into an immutable index, and the pure
`route(event, book)` that reads it.

Inheritance is resolved at compile time (jurisdiction-differences.md, section 3):

* A pack's rules apply in its own jurisdiction and every jurisdiction below it.
* A child rule with the same `key` as an ancestor's rule (declared `override: true`) replaces
  it — but only for the events its own conditions cover: for the others the ancestor's version
  still applies (fall-through), so a narrower local rule never hides a broader parent rule.
* Fields an override leaves out are inherited; constraints are the union down the chain and
  cannot be removed; the strictest urgency of the versions wins.
* A pack's `scope` (山东: women and children) keeps its rules away from out-of-scope events,
  which fall through to the parent's version.
* Abolished agencies are replaced by their successors; a plan whose period ended before the
  event happened still routes, and its referrals are flagged `expired_plan`.
* An event no rule covers goes to the joint-conference office for manual triage
  (`<jurisdiction>.unrouted`); a rule whose plan names no lead goes there too (`….triage`).

The index is keyed by (jurisdiction, event kind): routing an event never looks at rules for
other kinds or jurisdictions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import ValidationError

from rules.catalog import Catalog, catalog
from rules.deadlines import Deadlines
from rules.errors import PackError
from rules.explain import ConditionCheck, Explanation, PackStep, RuleCheck
from rules.fields import getter
from rules.model import Condition, Pack, Rule, Source
from rules.projection import event_values, project
from schemas.events import Event
from schemas.referrals import Citation, Referral, Role, referral_id_for

__all__ = [
    "DEFAULT_PACKS_DIR",
    "Explanation",
    "RuleBook",
    "compile_packs",
    "explain",
    "is_triage",
    "is_unrouted",
    "load_packs",
    "load_rulebook",
    "route",
]

DEFAULT_PACKS_DIR = Path(__file__).parent / "packs"
# libyaml's parser is ~10x faster than the pure-Python one on the ~250-rule packs.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
UNROUTED_SUFFIX = ".unrouted"
NO_LEAD_SUFFIX = ".triage"
TRIAGE_ACTION = "Manual triage"


def is_unrouted(referral: Referral) -> bool:
    """True for the triage referral of an event that no rule covered."""
    return bool(referral.rule_id.endswith(UNROUTED_SUFFIX))


def is_triage(referral: Referral) -> bool:
    """True for any manual-triage referral: no rule covered the event, or the deciding plan
    names no lead for the duty (红河 throughout)."""
    return bool(referral.rule_id.endswith((UNROUTED_SUFFIX, NO_LEAD_SUFFIX)))


# --------------------------------------------------------------------------------------------
# Compiled structure


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """A condition turned into a getter and a test; `test` never sees an unknown value."""

    text: str
    get: Callable[[Event], Any]
    test: Callable[[Any], bool]
    if_unknown_matches: bool

    def evaluate(self, event: Event) -> tuple[bool | None, Any]:
        """(True/False, value), or (None, value) when the value is unknown."""
        value = self.get(event)
        if value is None or value == ():
            return None, value
        try:
            return bool(self.test(value)), value
        except TypeError:
            return False, value

    def matches(self, event: Event) -> bool:
        result, _ = self.evaluate(event)
        return self.if_unknown_matches if result is None else bool(result)


def _compile_condition(c: Condition) -> CompiledCondition:
    v = c.value
    tests: dict[str, Callable[[Any], bool]] = {
        "eq": lambda x: x == v,
        "ne": lambda x: x != v,
        "lt": lambda x: x < v,
        "le": lambda x: x <= v,
        "gt": lambda x: x > v,
        "ge": lambda x: x >= v,
        "in": lambda x: x in v,
        "not_in": lambda x: x not in v,
        "contains": lambda x: v in x,
    }
    return CompiledCondition(c.describe(), getter(c.field), tests[c.op], c.if_unknown == "match")


@dataclass(frozen=True, slots=True)
class CompiledScope:
    description: str
    conditions: tuple[CompiledCondition, ...]

    def contains(self, event: Event) -> bool:
        return any(c.matches(event) for c in self.conditions)


@dataclass(frozen=True, slots=True)
class Variant:
    """One pack's version of a rule, with everything inherited already resolved, specialised
    for one (jurisdiction, kind)."""

    rule_id: str
    key: str
    pack: str
    all: tuple[CompiledCondition, ...]
    any: tuple[CompiledCondition, ...]
    scope: CompiledScope | None
    lead: tuple[str, ...]
    cooperating: tuple[str, ...]
    candidate_lead: tuple[str, ...]
    action: str
    urgency: str
    constraints: tuple[str, ...]
    citation: Citation
    fields_add: tuple[str, ...]
    fields_drop: tuple[str, ...]
    expires: dt.date
    inferred: bool
    inherited: tuple[str, ...]
    remapped: tuple[str, ...]

    def matches(self, event: Event) -> bool:
        for c in self.all:
            if not c.matches(event):
                return False
        return not self.any or any(c.matches(event) for c in self.any)


@dataclass(frozen=True, slots=True)
class Slot:
    """All versions of one rule key along a chain, nearest first: the first that applies wins."""

    key: str
    variants: tuple[Variant, ...]


@dataclass(frozen=True, slots=True)
class TriageTarget:
    pack: str
    agency: str
    urgency: str
    citation: Citation
    expires: dt.date


@dataclass(frozen=True, eq=False)
class RuleBook:
    """The compiled, immutable rule packs. Build with `load_rulebook()`; read by `route()`."""

    packs: Mapping[str, Pack]
    chains: Mapping[str, tuple[str, ...]]
    index: Mapping[tuple[str, str], tuple[Slot, ...]]
    triage: Mapping[str, TriageTarget]
    rule_count: int

    def slots(self, jurisdiction: str, kind: str) -> tuple[Slot, ...]:
        """The rules for one (jurisdiction, kind), in evaluation order."""
        return self.index.get((jurisdiction, kind), ())

    def kinds(self, jurisdiction: str) -> tuple[str, ...]:
        """Event kinds the jurisdiction has at least one rule for."""
        return tuple(sorted(k for (j, k) in self.index if j == jurisdiction))


# --------------------------------------------------------------------------------------------
# Loading and compiling


def load_packs(packs_dir: Path | None = None) -> dict[str, Pack]:
    """Read and validate every `*.yaml` pack in the folder; one problem line per bad file."""
    folder = Path(packs_dir) if packs_dir is not None else DEFAULT_PACKS_DIR
    packs: dict[str, Pack] = {}
    problems: list[str] = []
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise PackError([f"{folder}: no rule packs (*.yaml)"])
    for path in files:
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)
            pack = Pack.model_validate(raw)
        except yaml.YAMLError as exc:
            problems.append(f"{path.name}: invalid YAML: {exc}")
            continue
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                loc = ".".join(str(p) for p in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(f"{path.name}: {loc + ': ' if loc else ''}{msg}")
            continue
        if pack.jurisdiction != path.stem:
            problems.append(f"{path.name}: jurisdiction {pack.jurisdiction!r} does not match "
                            f"the file name")
            continue
        packs[pack.jurisdiction] = pack
    if problems:
        raise PackError(problems)
    return packs


def _chain(jurisdiction: str, packs: Mapping[str, Pack]) -> tuple[str, ...]:
    out: list[str] = []
    code: str | None = jurisdiction
    while code is not None:
        out.append(code)
        code = packs[code].parent
    return tuple(out)


def chain_problems(packs: Mapping[str, Pack]) -> list[str]:
    """Cross-pack checks: parents present, overrides that override something, and keys that
    silently shadow an ancestor's rule."""
    problems: list[str] = []
    for code, pack in sorted(packs.items()):
        if pack.parent is not None and pack.parent not in packs:
            problems.append(f"{code}.yaml: parent pack {pack.parent!r} is missing")
    if problems:
        return problems
    for code, pack in sorted(packs.items()):
        ancestors = _chain(code, packs)[1:]
        for rule in pack.rules:
            owner = next((a for a in ancestors if any(r.key == rule.key for r in packs[a].rules)),
                         None)
            if rule.override and owner is None:
                problems.append(
                    f"{code}.yaml: rule {rule.key}: override of a key that no parent pack has "
                    f"({' -> '.join(ancestors) or 'no parent'})")
            elif not rule.override and owner is not None:
                problems.append(
                    f"{code}.yaml: rule {rule.key}: same key as a rule of {owner}; "
                    "declare override: true")
    return problems


def _remap(codes: Iterable[str], cat: Catalog, notes: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for code in codes:
        todo = [code]
        while todo:
            c = todo.pop(0)
            agency = cat.agencies[c]
            if agency.abolished:
                notes.append(f"{c} -> {', '.join(agency.successors)}")
                todo[0:0] = list(agency.successors)
            else:
                out.append(c)
    return tuple(dict.fromkeys(out))


def _citation(s: Source) -> Citation:
    return Citation(file=s.file, clause=s.clause, quote=s.quote)


def _variant(jurisdiction: str, kind: str, versions: list[tuple[str, Rule]],
             packs: Mapping[str, Pack], scopes: Mapping[str, CompiledScope | None],
             cat: Catalog) -> Variant:
    """Resolve the nearest version in `versions` (nearest first) against its ancestors."""
    pack_code, rule = versions[0]
    inherited: list[str] = []

    def first(attr: str) -> Any:
        for code, r in versions:
            value = getattr(r, attr)
            if value is not None:
                if code != pack_code:
                    inherited.append(f"{attr} from {code}")
                return value
        return None

    when = first("when")
    lead = first("lead") or ()
    cooperating = first("cooperating") or ()
    action = first("action")
    fields = first("fields")
    # Strictest urgency of every version: a child cannot relax its parent's clock.
    urgencies = [r.urgency for _, r in versions if r.urgency is not None]
    urgency = min(urgencies, key=cat.urgency_rank)
    if urgency != rule.urgency and rule.urgency is not None:
        inherited.append(f"urgency {urgency} from an ancestor (stricter than {rule.urgency})")
    candidate = next((r.candidate_lead for _, r in versions if r.candidate_lead), ())
    # Constraints are additive down the chain, plus section-wide constraints of the
    # event's own chain for this kind.
    constraints: list[str] = []
    for _, r in reversed(versions):
        constraints.extend(r.constraints)
    for code in reversed(_chain(jurisdiction, packs)):
        for pc in packs[code].constraints:
            if pc.applies_to(kind):
                constraints.append(pc.text)
    remapped: list[str] = []
    lead_codes = _remap(lead, cat, remapped)
    coop_codes = tuple(c for c in _remap(cooperating, cat, remapped) if c not in lead_codes)
    return Variant(
        rule_id=f"{pack_code}.{rule.key}",
        key=rule.key,
        pack=pack_code,
        all=tuple(_compile_condition(c) for c in when.all),
        any=tuple(_compile_condition(c) for c in when.any),
        scope=scopes[pack_code],
        lead=lead_codes,
        cooperating=coop_codes,
        candidate_lead=_remap(candidate, cat, remapped),
        action=action,
        urgency=urgency,
        constraints=tuple(dict.fromkeys(constraints)),
        citation=_citation(rule.source),
        fields_add=fields.add if fields else (),
        fields_drop=fields.drop if fields else (),
        expires=cat.jurisdictions[pack_code].period.end,
        inferred=rule.inferred,
        inherited=tuple(inherited),
        remapped=tuple(dict.fromkeys(remapped)),
    )


def compile_packs(packs: Mapping[str, Pack]) -> RuleBook:
    """Resolve inheritance and build the (jurisdiction, kind) index. Raises PackError."""
    problems = chain_problems(packs)
    if problems:
        raise PackError(problems)
    cat = catalog()
    scopes: dict[str, CompiledScope | None] = {
        code: (CompiledScope(p.scope.description,
                             tuple(_compile_condition(c) for c in p.scope.any))
               if p.scope else None)
        for code, p in packs.items()
    }
    chains = {code: _chain(code, packs) for code in packs}
    index: dict[tuple[str, str], tuple[Slot, ...]] = {}
    triage: dict[str, TriageTarget] = {}
    for code, chain in chains.items():
        owner = next(c for c in chain if packs[c].triage is not None)
        t = packs[owner].triage
        assert t is not None
        triage[code] = TriageTarget(owner, t.agency, t.urgency, _citation(t.source),
                                    cat.jurisdictions[owner].period.end)
        # key -> versions nearest first
        versions: dict[str, list[tuple[str, Rule]]] = {}
        for pack_code in chain:
            for rule in packs[pack_code].rules:
                versions.setdefault(rule.key, []).append((pack_code, rule))
        by_kind: dict[str, list[Slot]] = {}
        for key in sorted(versions):
            vs = versions[key]
            # The `when` each version applies with: its own, else the nearest ancestor's.
            whens = []
            for i in range(len(vs)):
                when = next((x.when for _, x in vs[i:] if x.when is not None), None)
                assert when is not None  # a root version always has `when` (model check)
                whens.append(when)
            for kind in sorted({k for w in whens for k in w.kind}):
                variants = [_variant(code, kind, vs[i:], packs, scopes, cat)
                            for i in range(len(vs)) if kind in whens[i].kind]
                by_kind.setdefault(kind, []).append(Slot(key, tuple(variants)))
        for kind, slots in by_kind.items():
            index[(code, kind)] = tuple(slots)
    return RuleBook(
        packs=MappingProxyType(dict(packs)),
        chains=MappingProxyType(chains),
        index=MappingProxyType(index),
        triage=MappingProxyType(triage),
        rule_count=sum(len(p.rules) for p in packs.values()),
    )


@cache
def _load_rulebook_cached(folder: Path) -> RuleBook:
    return compile_packs(load_packs(folder))


def load_rulebook(packs_dir: Path | None = None) -> RuleBook:
    """Load, validate and compile every pack in `packs_dir` (default: `rules/packs/`).
    Cached per folder: the result is immutable and safe to share. Raises PackError."""
    folder = Path(packs_dir) if packs_dir is not None else DEFAULT_PACKS_DIR
    return _load_rulebook_cached(folder.resolve())


# --------------------------------------------------------------------------------------------
# Routing


@cache
def _default_deadlines() -> Deadlines:
    return Deadlines.load()


def _referrals_for(event: Event, values: dict[str, Any], v: Variant, deadlines: Deadlines,
                   triage: TriageTarget, expired: bool) -> list[Referral]:
    out: list[Referral] = []
    ack = deadlines.ack_by(v.urgency, event.reported_at)
    due = deadlines.due_by(v.urgency, event.reported_at)

    def make(agency: str, role: Role, rule_id: str, action: str) -> Referral:
        # Every input was validated (the event on arrival, the pack at load): skip re-validation.
        return Referral.model_construct(
            referral_id=referral_id_for(event.event_id, agency, rule_id, role),
            event_id=event.event_id, kind=event.kind, jurisdiction=event.jurisdiction,
            decided_by=v.pack, agency=agency, role=role, action=action, urgency=v.urgency,
            reported_at=event.reported_at, ack_by=ack, due_by=due, rule_id=rule_id,
            citation=v.citation, constraints=v.constraints, exercise=event.exercise,
            expired_plan=expired, case_id=event.case_id,
            subject=project(event, agency, add=v.fields_add, drop=v.fields_drop, values=values))

    if v.lead:
        for agency in v.lead:
            out.append(make(agency, "lead", v.rule_id, v.action))
        leads = ", ".join(v.lead)
    else:
        # The plan names no lead (红河 throughout): the joint-conference office assigns one.
        cands = ", ".join(v.candidate_lead) or "none given"
        out.append(make(triage.agency, "lead", v.rule_id + NO_LEAD_SUFFIX,
                        f"{TRIAGE_ACTION}: the plan names no lead for this duty; assign one "
                        f"(candidate leads: {cands}). Duty: {v.action}"))
        leads = "the lead to be assigned"
    for agency in v.cooperating:
        out.append(make(agency, "cooperating", v.rule_id, f"Cooperate with {leads}: {v.action}"))
    return out


def _unrouted(event: Event, t: TriageTarget, deadlines: Deadlines) -> Referral:
    rule_id = f"{event.jurisdiction}{UNROUTED_SUFFIX}"
    return Referral(
        referral_id=referral_id_for(event.event_id, t.agency, rule_id, "lead"),
        event_id=event.event_id, kind=event.kind, jurisdiction=event.jurisdiction,
        decided_by=t.pack, agency=t.agency, role="lead",
        action=f"{TRIAGE_ACTION}: no rule of the {event.jurisdiction} plan chain covers this "
               "event; decide who must act and re-route it",
        urgency=t.urgency, reported_at=event.reported_at,
        ack_by=deadlines.ack_by(t.urgency, event.reported_at),
        due_by=deadlines.due_by(t.urgency, event.reported_at),
        rule_id=rule_id, citation=t.citation, exercise=event.exercise,
        expired_plan=event.occurred_at.date() > t.expires, case_id=event.case_id,
        subject=project(event, t.agency))


def _sort_key(r: Referral) -> tuple[int, str, str]:
    return (0 if r.role == "lead" else 1, r.agency, r.rule_id)


def route(event: Event, book: RuleBook, *, deadlines: Deadlines | None = None) -> list[Referral]:
    """Every referral the plans require for `event`: pure, synchronous, deterministic order
    (lead before cooperating, then agency, then rule id). An event no rule covers yields one
    triage referral to the joint-conference office; an event of a kind that only acts on an open
    case (`routed: false` in the catalog, e.g. `case_resolved`) yields none."""
    if not catalog().event_kinds[event.kind].routed:
        return []
    dl = deadlines if deadlines is not None else _default_deadlines()
    day = event.occurred_at.date()
    out: list[Referral] = []
    values: dict[str, Any] | None = None  # the event dumped once, for every referral's projection
    for slot in book.index.get((event.jurisdiction, event.kind), ()):
        for v in slot.variants:
            if v.scope is not None and not v.scope.contains(event):
                continue
            if v.matches(event):
                values = values if values is not None else event_values(event)
                out.extend(_referrals_for(event, values, v, dl, book.triage[event.jurisdiction],
                                          day > v.expires))
                break
    if not out:
        out.append(_unrouted(event, book.triage[event.jurisdiction], dl))
    out.sort(key=_sort_key)
    return out


def _checks(conds: tuple[CompiledCondition, ...], event: Event) -> list[ConditionCheck]:
    out = []
    for c in conds:
        result, value = c.evaluate(event)
        label = "unknown" if result is None else ("match" if result else "no_match")
        out.append(ConditionCheck(condition=c.text, value=repr(value), result=label))
    return out


def explain(event: Event, book: RuleBook) -> Explanation:
    """The chain walked, each rule version considered for the event's kind — fired, did not
    match (and which condition failed), out of the pack's scope, or not reached because a
    nearer version fired — with its cited clause, and the resulting referrals."""
    chain = book.chains[event.jurisdiction]
    cat = catalog()
    day = event.occurred_at.date()
    steps = []
    for code in chain:
        pack = book.packs[code]
        in_scope = True if pack.scope is None else any(
            _compile_condition(c).matches(event) for c in pack.scope.any)
        steps.append(PackStep(jurisdiction=code, title=pack.title,
                              expired=day > cat.jurisdictions[code].period.end,
                              in_scope=in_scope,
                              scope=pack.scope.description if pack.scope else None))
    checks: list[RuleCheck] = []
    for slot in book.slots(event.jurisdiction, event.kind):
        fired: str | None = None
        for v in slot.variants:
            conds: list[ConditionCheck] = []
            if fired is not None:
                outcome, reason = "not_reached", f"{fired} fired first (nearer plan)"
            elif v.scope is not None and not v.scope.contains(event):
                outcome, reason = "out_of_scope", f"{v.pack} covers only: {v.scope.description}"
            else:
                conds = _checks(v.all, event) + _checks(v.any, event)
                if v.matches(event):
                    outcome, reason = "fired", "all conditions match" if conds else "no conditions"
                    fired = v.rule_id
                else:
                    bad = [c for c in _checks(v.all, event)
                           if c.result != "match"]
                    reason = ("; ".join(f"{c.condition} is {c.result} (event: {c.value})"
                                        for c in bad)
                              or "none of the 'any' conditions match")
                    outcome = "no_match"
            checks.append(RuleCheck(
                rule_id=v.rule_id, pack=v.pack, key=v.key, outcome=outcome, reason=reason,
                checks=tuple(conds), lead=v.lead, cooperating=v.cooperating,
                candidate_lead=v.candidate_lead, urgency=v.urgency, constraints=v.constraints,
                inherited=v.inherited, remapped=v.remapped, citation=v.citation,
                expired_plan=day > v.expires, inferred=v.inferred))
    referrals = route(event, book)
    return Explanation(
        event_id=event.event_id, kind=event.kind, jurisdiction=event.jurisdiction,
        chain=tuple(steps), rules=tuple(checks), referrals=tuple(referrals),
        unrouted=any(is_unrouted(r) for r in referrals))
