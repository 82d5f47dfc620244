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
* Abolished agencies are replaced by their successors.
* Expired plans (jurisdiction-differences.md, guidance 7): an event that happened after every
  plan of a chain (or its lower part) had ended routes by the plan in force — the live packs of
  the chain, then the chain of the expired root's successor (`succeeded_by` in the catalog:
  national_2013 -> national_2021) — wherever that covers the situation; otherwise the expired
  plan still routes it and its referrals are flagged `expired_plan`.
* One event, one role per agency: when several rules fire, an agency that leads one of them gets
  no cooperating referral from another (the plan never makes a unit its own partner).
* A rule whose plan names no lead (红河 throughout; "配合相关部门") cooperates with the leads the
  other rules fired for the event; if none fired, the joint-conference office gets it for manual
  triage (`….triage`). An event no rule covers goes there too (`<jurisdiction>.unrouted`).
* Every unit a rule refers to is named by a verbatim quote of the plan (`names`): `explain` shows
  it for every referral.

The index is keyed by (jurisdiction, event kind): routing an event never looks at rules for
other kinds or jurisdictions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError
from pydantic_core import to_json

from rules.catalog import Catalog, catalog
from rules.deadlines import Deadlines
from rules.errors import PackError
from rules.explain import ConditionCheck, Explanation, NamedUnit, PackStep, RuleCheck
from rules.fields import getter
from rules.model import Condition, Pack, Rule, Source
from rules.projection import EventValues, Projector, projector
from schemas.encoding import Template, built, made, template, text_json
from schemas.events import Event
from schemas.referrals import Citation, Referral, Role, referral_id_suffix, referral_ids

__all__ = [
    "DEFAULT_PACKS_DIR",
    "Deferral",
    "DutyFields",
    "Explanation",
    "PlanStatus",
    "RuleBook",
    "WrittenReferral",
    "compile_packs",
    "duties_for",
    "explain",
    "is_triage",
    "is_unrouted",
    "load_packs",
    "load_rulebook",
    "plan_status",
    "route",
    "route_written",
]

DEFAULT_PACKS_DIR = Path(__file__).parent / "packs"
# libyaml's parser is ~10x faster than the pure-Python one on the ~250-rule packs.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
UNROUTED_SUFFIX = ".unrouted"
NO_LEAD_SUFFIX = ".triage"
TRIAGE_ACTION = "Manual triage"
TRIAGE_ACTION_ZH = "人工分派"


def is_unrouted(referral: Referral | DutyFields) -> bool:
    """True for the triage referral of an event that no rule covered."""
    return bool(referral.rule_id.endswith(UNROUTED_SUFFIX))


def is_triage(referral: Referral | DutyFields) -> bool:
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


@dataclass(frozen=True, slots=True, eq=False)
class Variant:
    """One pack's version of a rule, with everything inherited already resolved, specialised
    for one (jurisdiction, kind). Compared by identity: the rules fired for an event key the
    book's `assignments`."""

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
    action_zh: str
    urgency: str
    constraints: tuple[str, ...]
    citation: Citation
    naming: Mapping[str, Citation]
    fields_add: tuple[str, ...]
    fields_drop: tuple[str, ...]
    expires: dt.date
    inferred: bool
    inherited: tuple[str, ...]
    remapped: tuple[str, ...]
    #: The joint-conference office of the chain, for a rule whose plan names no lead.
    triage: TriageTarget
    #: The referrals this rule makes, by the leads of the other rules fired for the event
    #: (`duties`): built on first use, then shared by every event.
    _duties: dict[tuple[str, ...], tuple[Duty, ...]] = field(
        default_factory=dict, repr=False, compare=False)

    def matches(self, event: Event) -> bool:
        for c in self.all:
            if not c.matches(event):
                return False
        return not self.any or any(c.matches(event) for c in self.any)

    def duties(self, event_leads: tuple[str, ...]) -> tuple[Duty, ...]:
        """The referrals this rule makes when it fires, `event_leads` being the leads of every
        rule fired for the event: a rule that names no lead cooperates with them, or goes to
        triage if there are none."""
        key = () if self.lead else event_leads
        found = self._duties.get(key)
        if found is None:
            found = self._duties[key] = _duties_of(self, key)
        return found


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


@dataclass(frozen=True, slots=True)
class DutyFields:
    """A referral's own fields, those of its duty: the same for every event the duty is routed
    for (the event's ids, times, flags and subject are not among them)."""

    decided_by: str
    agency: str
    role: Role
    action: str
    action_zh: str
    urgency: str
    rule_id: str
    citation: Citation
    constraints: tuple[str, ...]

    @classmethod
    def of(cls, referral: Referral) -> DutyFields:
        """The duty's fields of a referral held as a model."""
        return cls(referral.decided_by, referral.agency, referral.role, referral.action, referral.action_zh,
                   referral.urgency, referral.rule_id, referral.citation, referral.constraints)


@dataclass(frozen=True, slots=True, eq=False)
class Duty:
    """One referral a fired rule makes, with everything but the event's own values resolved
    once: `fields`, the referral's fields that do not depend on the event (agency, role, action,
    urgency, rule, citation, constraints). `template` is a referral with those fields and
    placeholders for the event's (its referral id all zeros), which `route` copies with the
    event's ids, times, flags and need-to-know subject (`_referrals`); `written` is the
    referral's message with the duty's fields already serialised (`_written`)."""

    fields: DutyFields
    template: Referral
    written: Template
    sort_key: tuple[int, str, str]
    #: The part of the referral id's name that does not depend on the event, as UTF-8.
    id_suffix: bytes
    projector: Projector
    expires: dt.date


@dataclass(frozen=True, slots=True, eq=False)
class Assignment:
    """The referrals one set of fired rules makes (their duties, in `route`'s order), with what
    writing them for an event reads once: the distinct need-to-know projections, the event
    fields those read, and the distinct urgencies (a deadline each)."""

    duties: tuple[Duty, ...]
    projectors: tuple[Projector, ...]
    heads: frozenset[str]
    urgencies: tuple[str, ...]
    #: Whether the referrals' subjects are taken from one dump of the event (`EventValues.known`)
    #: made first, rather than each projection reading its fields alone: for the models
    #: (`_referrals`), when a projection takes whole values (the police's: the dump is made
    #: anyway); for the messages (`_written`), where the police's subject is written without a
    #: dump (`Projector.subject_json`), only when more than one other projection would then read
    #: its fields alone (a dump shared by them costs less: benchmarks/step.py, abandoned infant).
    dump_for_models: bool = False
    dump_for_messages: bool = False

    @classmethod
    def of(cls, duties: Iterable[Duty]) -> Assignment:
        ordered = tuple(sorted(duties, key=_duty_order))
        projectors = tuple(dict.fromkeys(d.projector for d in ordered))
        whole = any(p.wholes is not None for p in projectors)
        return cls(ordered, projectors, frozenset().union(*(p.heads for p in projectors)),
                   tuple(dict.fromkeys(d.fields.urgency for d in ordered)), whole,
                   whole and sum(p.wholes is None for p in projectors) > 1)


@dataclass(frozen=True, slots=True)
class Deferral:
    """For events after `after` in a jurisdiction: the plans of its chain that had ended, and the
    chain in force that routes the event instead where it covers the situation (guidance 7).
    `key` indexes the compiled rules of that chain in `RuleBook.deferred_index` and
    `RuleBook.deferred_triage`."""

    after: dt.date
    expired: tuple[str, ...]
    chain: tuple[str, ...]
    key: str


@dataclass(frozen=True, eq=False)
class RuleBook:
    """The compiled, immutable rule packs. Build with `load_rulebook()`; read by `route()`."""

    packs: Mapping[str, Pack]
    chains: Mapping[str, tuple[str, ...]]
    index: Mapping[tuple[str, str], tuple[Slot, ...]]
    triage: Mapping[str, TriageTarget]
    rule_count: int
    deferrals: Mapping[str, tuple[Deferral, ...]] = field(
        default_factory=lambda: MappingProxyType({}))
    #: The slots and triage of each deferral's chain in force, keyed like `index` and `triage`
    #: but by `Deferral.key` (not a jurisdiction).
    deferred_index: Mapping[tuple[str, str], tuple[Slot, ...]] = field(
        default_factory=lambda: MappingProxyType({}))
    deferred_triage: Mapping[str, TriageTarget] = field(
        default_factory=lambda: MappingProxyType({}))
    #: The triage referral of an event no rule covers, per (jurisdiction, deferral key): built
    #: on first use (`_unrouted`).
    unrouted: dict[tuple[str, str | None], Assignment] = field(default_factory=dict, repr=False)
    #: The referrals of each set of rules fired together, by those rules (`_assignment`): built
    #: on first use, up to `_ASSIGNMENTS_KEPT` sets.
    assignments: dict[tuple[Variant, ...], Assignment] = field(default_factory=dict, repr=False)

    def deferral(self, jurisdiction: str, day: dt.date) -> Deferral | None:
        """The plan in force for an event on `day`, when the jurisdiction's own plan had ended."""
        found = None
        for d in self.deferrals.get(jurisdiction, ()):
            if day > d.after:
                found = d
        return found

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


def _naming_of(code: str, versions: list[tuple[str, Rule]]) -> Citation | None:
    """The quote naming unit `code`, from the nearest version that names it."""
    for _, r in versions:
        n = r.names.get(code)
        if n is not None:
            return _citation(n.cited_in(r.source))
    return None


def _variant(chain: tuple[str, ...], kind: str, versions: list[tuple[str, Rule]],
             packs: Mapping[str, Pack], scopes: Mapping[str, CompiledScope | None],
             cat: Catalog, triage: TriageTarget) -> Variant:
    """Resolve the nearest version in `versions` (nearest first) against its ancestors, for an
    event whose plan chain is `chain`."""
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
    action_zh = first("action_zh")
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
    for code in reversed(chain):
        for pc in packs[code].constraints:
            if pc.applies_to(kind):
                constraints.append(pc.text)
    naming: dict[str, Citation] = {}
    unnamed: list[str] = []
    for code in (*lead, *cooperating):
        cite = _naming_of(code, versions)
        if cite is None:
            unnamed.append(code)
            continue
        # A successor of an abolished unit is named by the quote naming the old unit.
        for successor in _remap((code,), cat, []):
            naming.setdefault(successor, cite)
    if unnamed:
        raise PackError([f"{pack_code}.yaml: rule {rule.key}: {', '.join(unnamed)} named by no "
                         "quote in this rule or the versions it inherits from (add names)"])
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
        action_zh=action_zh,
        urgency=urgency,
        constraints=tuple(dict.fromkeys(constraints)),
        citation=_citation(rule.source),
        naming=MappingProxyType(naming),
        fields_add=fields.add if fields else (),
        fields_drop=fields.drop if fields else (),
        expires=cat.jurisdictions[pack_code].period.end,
        inferred=rule.inferred,
        inherited=tuple(inherited),
        remapped=tuple(dict.fromkeys(remapped)),
        triage=triage,
    )


def _deferrals(code: str, chain: tuple[str, ...], packs: Mapping[str, Pack],
               cat: Catalog) -> tuple[Deferral, ...]:
    """The chains in force after each end date of `chain`'s plans, where they differ from it:
    the packs still running, then the chain of the expired root's successor."""
    out: list[Deferral] = []
    ends = sorted({cat.jurisdictions[c].period.end for c in chain})
    for end in ends:
        expired = tuple(c for c in chain if cat.jurisdictions[c].period.end <= end)
        live = [c for c in chain if c not in expired]
        root = chain[-1]
        successor = cat.jurisdictions[root].succeeded_by if root in expired else None
        if successor is not None and successor in packs and \
                cat.jurisdictions[successor].period.end > end:
            live.extend(_chain(successor, packs))
        if not live or tuple(live) == chain:
            continue
        out.append(Deferral(after=end, expired=expired, chain=tuple(dict.fromkeys(live)),
                            key=f"{code}~{end.isoformat()}"))
    return tuple(out)


def _compile_chain(chain: tuple[str, ...], packs: Mapping[str, Pack],
                   scopes: Mapping[str, CompiledScope | None], cat: Catalog,
                   problems: list[str]) -> tuple[dict[str, tuple[Slot, ...]], TriageTarget]:
    """The slots of every event kind for one chain of packs, nearest first, and its triage."""
    owner = next(c for c in chain if packs[c].triage is not None)
    t = packs[owner].triage
    assert t is not None
    triage = TriageTarget(owner, t.agency, t.urgency, _citation(t.source),
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
            variants = []
            for i in range(len(vs)):
                if kind not in whens[i].kind:
                    continue
                try:
                    variants.append(_variant(chain, kind, vs[i:], packs, scopes, cat, triage))
                except PackError as exc:
                    problems.extend(p for p in exc.problems if p not in problems)
            if variants:
                by_kind.setdefault(kind, []).append(Slot(key, tuple(variants)))
    return {kind: tuple(slots) for kind, slots in by_kind.items()}, triage


def compile_packs(packs: Mapping[str, Pack]) -> RuleBook:
    """Resolve inheritance and build the (jurisdiction, kind) index, and the index of the chain in
    force after each expiry (keyed by `Deferral.key`). Raises PackError."""
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
    deferrals: dict[str, tuple[Deferral, ...]] = {}
    deferred_index: dict[tuple[str, str], tuple[Slot, ...]] = {}
    deferred_triage: dict[str, TriageTarget] = {}
    for code, chain in chains.items():
        by_kind, triage[code] = _compile_chain(chain, packs, scopes, cat, problems)
        index.update({(code, kind): slots for kind, slots in by_kind.items()})
        deferrals[code] = _deferrals(code, chain, packs, cat)
        for d in deferrals[code]:
            by_kind, deferred_triage[d.key] = _compile_chain(d.chain, packs, scopes, cat, problems)
            deferred_index.update({(d.key, kind): slots for kind, slots in by_kind.items()})
    if problems:
        raise PackError(problems)
    return RuleBook(
        packs=MappingProxyType(dict(packs)),
        chains=MappingProxyType(chains),
        index=MappingProxyType(index),
        triage=MappingProxyType(triage),
        rule_count=sum(len(p.rules) for p in packs.values()),
        deferrals=MappingProxyType({k: v for k, v in deferrals.items() if v}),
        deferred_index=MappingProxyType(deferred_index),
        deferred_triage=MappingProxyType(deferred_triage),
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


def _zh_list(codes: Iterable[str]) -> str:
    agencies = catalog().agencies
    return "、".join(agencies[c].short_zh for c in codes)


#: Values of a template's event fields until routing copies it with an event's own.
_NO_EVENT: dict[str, Any] = {
    "referral_id": uuid.UUID(int=0), "event_id": uuid.UUID(int=0), "kind": "", "jurisdiction": "",
    "reported_at": dt.datetime(1970, 1, 1, tzinfo=dt.UTC), "ack_by": None, "due_by": None,
    "exercise": False, "expired_plan": False, "case_id": None, "subject": {}}


#: The referral's fields that `_build` fills in per event (the others are the duty's own).
_EVENT_FIELDS = tuple(_NO_EVENT)
#: The fields a routed referral was given (as `model_copy` of a template left them: all but
#: `schema_version`, the model's default): one set shared by every referral `route` builds
#: (`built`; a referral is frozen, and pydantic copies the set for `model_copy`).
_FIELDS_SET = set(Referral.model_fields) - {"schema_version"}


def _duty(agency: str, role: Role, rule_id: str, action: str, action_zh: str, *, decided_by: str,
          urgency: str, citation: Citation, constraints: tuple[str, ...], expires: dt.date,
          fields_add: tuple[str, ...] = (), fields_drop: tuple[str, ...] = ()) -> Duty:
    # Every input was validated (the pack at load, the event on arrival): no re-validation.
    referral = Referral.model_construct(
        **_NO_EVENT, decided_by=decided_by, agency=agency, role=role, action=action,
        action_zh=action_zh, urgency=urgency, rule_id=rule_id, citation=citation,
        constraints=constraints)
    # Its message with the duty's own fields written once, the event's left to fill in.
    written = template(Referral, _EVENT_FIELDS,
                       {k: v for k, v in referral.__dict__.items() if k not in _EVENT_FIELDS})
    if written.holes != _EVENT_FIELDS:  # `_written` fills them in this order
        raise AssertionError(f"a referral's event fields are {written.holes}, not {_EVENT_FIELDS}")
    fields = DutyFields(decided_by, agency, role, action, action_zh, urgency, rule_id, citation, constraints)
    return Duty(fields, referral, written, (0 if role == "lead" else 1, agency, rule_id),
                referral_id_suffix(agency, rule_id, role).encode(),
                projector(agency, fields_add, fields_drop), expires)


def _duties_of(v: Variant, event_leads: tuple[str, ...]) -> tuple[Duty, ...]:
    """The referrals of rule version `v` when it fires (`Variant.duties`)."""

    def make(agency: str, role: Role, rule_id: str, action: str, action_zh: str) -> Duty:
        return _duty(agency, role, rule_id, action, action_zh, decided_by=v.pack, urgency=v.urgency,
                     citation=v.citation, constraints=v.constraints, expires=v.expires,
                     fields_add=v.fields_add, fields_drop=v.fields_drop)

    out: list[Duty] = []
    partners = v.lead or event_leads
    if v.lead:
        for agency in v.lead:
            out.append(make(agency, "lead", v.rule_id, v.action, v.action_zh))
    elif not event_leads:
        # The plan names no lead (红河 throughout) and no other rule leads the event: the
        # joint-conference office assigns one.
        cands = ", ".join(v.candidate_lead) or "none given"
        out.append(make(v.triage.agency, "lead", v.rule_id + NO_LEAD_SUFFIX,
                        f"{TRIAGE_ACTION}: the plan names no lead for this duty; assign one "
                        f"(candidate leads: {cands}). Duty: {v.action}",
                        f"{TRIAGE_ACTION_ZH}：计划未指明负责单位，请指定"
                        f"（候选：{_zh_list(v.candidate_lead) or '无'}）。职责：{v.action_zh}"))
    leads = ", ".join(partners) or "the lead to be assigned"
    leads_zh = _zh_list(partners) or "待指定的负责单位"
    for agency in v.cooperating:
        out.append(make(agency, "cooperating", v.rule_id, f"Cooperate with {leads}: {v.action}",
                        f"配合{leads_zh}：{v.action_zh}"))
    return tuple(out)


def _unrouted(book: RuleBook, jurisdiction: str, deferral: Deferral | None) -> Assignment:
    """The triage referral of an event of `jurisdiction` that no rule covers (built once)."""
    key = (jurisdiction, deferral.key if deferral is not None else None)
    found = book.unrouted.get(key)
    if found is None:
        t = book.deferred_triage[deferral.key] if deferral is not None else book.triage[jurisdiction]
        found = book.unrouted[key] = Assignment.of([_duty(
            t.agency, "lead", f"{jurisdiction}{UNROUTED_SUFFIX}",
            f"{TRIAGE_ACTION}: no rule of the {jurisdiction} plan chain covers this "
            "event; decide who must act and re-route it",
            f"{TRIAGE_ACTION_ZH}：本地计划中没有规则覆盖此事件，请决定由谁负责并重新分派",
            decided_by=t.pack, urgency=t.urgency, citation=t.citation, constraints=(),
            expires=t.expires)])
    return found


def _duty_order(d: Duty) -> tuple[int, str, str]:
    return d.sort_key


def _fired(event: Event, index: Mapping[tuple[str, str], tuple[Slot, ...]], key: str
           ) -> tuple[Variant, ...]:
    """The version of each rule that applies to the event in the chain indexed by `key`."""
    out: list[Variant] = []
    for slot in index.get((key, event.kind), ()):
        for v in slot.variants:
            if v.scope is not None and not v.scope.contains(event):
                continue
            if v.matches(event):
                out.append(v)
                break
    return tuple(out)


def _duties(fired: tuple[Variant, ...]) -> list[Duty]:
    """The referrals the fired rules make, one role per agency: a lead is not also its own
    cooperating unit."""
    event_leads = tuple(dict.fromkeys(a for v in fired for a in v.lead))
    duties = [d for v in fired for d in v.duties(event_leads)]
    leading = {d.fields.agency for d in duties if d.fields.role == "lead"}
    return [d for d in duties if d.fields.role == "lead" or d.fields.agency not in leading]


#: How many sets of fired rules a book keeps the assignment of. The shipped packs give some
#: hundreds (630 for every kind in every jurisdiction with varied persons and dates); the bound
#: keeps a pack whose rules combine in very many ways from filling memory.
_ASSIGNMENTS_KEPT = 10_000


def _assignment(book: RuleBook, fired: tuple[Variant, ...]) -> Assignment:
    """The referrals of the rules `fired` together (`_duties`, ordered), found once per set."""
    found = book.assignments.get(fired)
    if found is None:
        found = Assignment.of(_duties(fired))
        if len(book.assignments) < _ASSIGNMENTS_KEPT:
            book.assignments[fired] = found
    return found


_NOTHING = Assignment((), (), frozenset(), ())


@cache
def _routed_kinds() -> frozenset[str]:
    """The event kinds that rules route (the others only act on an open case)."""
    return frozenset(code for code, kind in catalog().event_kinds.items() if kind.routed)


def _assigned(event: Event, book: RuleBook) -> Assignment:
    """The rule evaluation: who must act on `event` (`duties_for`)."""
    if event.kind not in _routed_kinds():
        return _NOTHING
    deferral = book.deferral(event.jurisdiction, event.occurred_at.date())
    if deferral is not None:
        in_force = _assignment(book, _fired(event, book.deferred_index, deferral.key))
        if in_force.duties:
            return in_force
    own = _assignment(book, _fired(event, book.index, event.jurisdiction))
    if own.duties:
        return own
    return _unrouted(book, event.jurisdiction, deferral)


def duties_for(event: Event, book: RuleBook) -> list[Duty]:
    """Who must act on `event`, the rule evaluation alone: the duty of each referral `route`
    writes, in its order (the event's own values not yet filled in)."""
    return list(_assigned(event, book).duties)


class WrittenReferral(NamedTuple):
    """A referral as the router's step needs it: its message (`referral.model_dump_json().encode()`),
    written from parts serialised once (the duty's own fields, the event's, each subject and
    deadline), without the model. The model is `referral`, read back from the message."""

    #: The referral's own fields, those of its duty (agency, role, action, action_zh, urgency,
    #: rule_id, citation, constraints, decided_by); the event's are in `parts`.
    duty: DutyFields
    value: bytes
    #: The JSON of the referral's per-event fields as its message writes them (`_EVENT_FIELDS`:
    #: referral_id, event_id, kind, jurisdiction, reported_at, ack_by, due_by, exercise,
    #: expired_plan, case_id, subject), for outputs written beside it (services/router/outputs.py).
    parts: Mapping[str, bytes]

    @property
    def referral(self) -> Referral:
        """The referral as a model, validated from its message: for readers and tests (the
        router's step reads `duty` and `parts`, and builds no model)."""
        return Referral.model_validate_json(self.value)


_BOOL_JSON = {False: b"false", True: b"true"}
_NULL_JSON = b"null"


def _deadlines_json(deadlines: tuple[dt.datetime | None, dt.datetime | None]) -> tuple[bytes, bytes]:
    ack_by, due_by = deadlines
    return (_NULL_JSON if ack_by is None else to_json(ack_by)), (_NULL_JSON if due_by is None else to_json(due_by))


def _referrals(event: Event, assignment: Assignment, dl: Deadlines) -> list[Referral]:
    """The referrals of `assignment` for `event`: each duty's template with the event's values,
    each of those read once (each distinct subject, each urgency's deadlines, the event's part of
    the referral ids hashed). The values were validated (the event on arrival, the rules at
    load): the referral is built from them as `model_construct` would (`built`)."""
    # Loops rather than comprehensions: a comprehension is a call of its own, and there are one
    # or two subjects and urgencies per event.
    values = EventValues(event, assignment.heads)
    if assignment.dump_for_models:
        values.known()
    subjects = {}
    for p in assignment.projectors:
        subjects[p] = p.subject(values)
    reported_at = event.reported_at
    clocks = {}
    for u in assignment.urgencies:
        clocks[u] = dl.deadlines_of(u, reported_at)
    ids = referral_ids(to_json(event.event_id)[1:-1])
    day = event.occurred_at.date()
    shared = {"event_id": event.event_id, "kind": event.kind, "jurisdiction": event.jurisdiction,
              "reported_at": reported_at, "exercise": event.exercise, "case_id": event.case_id}
    out = []
    for d in assignment.duties:
        ack_by, due_by = clocks[d.fields.urgency]
        out.append(built(Referral, {
            **d.template.__dict__, **shared, "referral_id": ids(d.id_suffix), "ack_by": ack_by,
            "due_by": due_by, "expired_plan": day > d.expires, "subject": subjects[d.projector]},
            _FIELDS_SET))
    return out


def _written(event: Event, assignment: Assignment, dl: Deadlines) -> list[WrittenReferral]:
    """The messages of `_referrals`, written from the JSON of each part (each subject and deadline
    serialised once), without building the models."""
    # As `_referrals` reads them, each subject and deadline written as JSON as it is found.
    values = EventValues(event, assignment.heads)
    if assignment.dump_for_messages:
        values.known()
    subjects_json = {}
    for p in assignment.projectors:
        subjects_json[p] = p.subject_json(values)
    reported_at = event.reported_at
    clocks_json = {}
    for u in assignment.urgencies:
        clocks_json[u] = _deadlines_json(dl.deadlines_of(u, reported_at))
    event_id_json = to_json(event.event_id)
    ids = referral_ids(event_id_json[1:-1])
    day = event.occurred_at.date()
    kind_json, jurisdiction_json = text_json(event.kind), text_json(event.jurisdiction)
    reported_at_json, exercise_json = to_json(reported_at), _BOOL_JSON[event.exercise]
    case_id_json = _NULL_JSON if event.case_id is None else to_json(event.case_id)
    shared_json = {"event_id": event_id_json, "kind": kind_json, "jurisdiction": jurisdiction_json,
                   "reported_at": reported_at_json, "exercise": exercise_json, "case_id": case_id_json}
    written = []
    for d in assignment.duties:
        ack_json, due_json = clocks_json[d.fields.urgency]
        referral_id_json, expired_json = ids.json(d.id_suffix), _BOOL_JSON[day > d.expires]
        subject_json = subjects_json[d.projector]
        parts = {**shared_json, "referral_id": referral_id_json, "ack_by": ack_json, "due_by": due_json,
                 "expired_plan": expired_json, "subject": subject_json}
        # The holes in their order (`_EVENT_FIELDS`, as `_duty` checks), from the parts at hand
        # rather than looked up again in `parts`.
        value = d.written.fill(referral_id_json, event_id_json, kind_json, jurisdiction_json, reported_at_json,
                               ack_json, due_json, exercise_json, expired_json, case_id_json, subject_json)
        written.append(made(WrittenReferral, (d.fields, value, parts)))
    return written


def route(event: Event, book: RuleBook, *, deadlines: Deadlines | None = None) -> list[Referral]:
    """Every referral the plans require for `event`: pure, synchronous, deterministic order
    (lead before cooperating, then agency, then rule id). An event no rule covers yields one
    triage referral to the joint-conference office; an event of a kind that only acts on an open
    case (`routed: false` in the catalog, e.g. `case_resolved`) yields none. An event that
    happened after its jurisdiction's plan ended routes by the plan in force where that covers
    it (see `RuleBook.deferral`).

    Referrals of one event that have the same need-to-know projection share one `subject`."""
    assignment = _assigned(event, book)
    if not assignment.duties:
        return []
    return _referrals(event, assignment, deadlines if deadlines is not None else _default_deadlines())


def route_written(event: Event, book: RuleBook, *, deadlines: Deadlines | None = None
                  ) -> list[WrittenReferral]:
    """`route`'s referrals as their messages (the router's step: each part serialised once, and
    no model built: `WrittenReferral.referral` reads one back)."""
    assignment = _assigned(event, book)
    if not assignment.duties:
        return []
    return _written(event, assignment, deadlines if deadlines is not None else _default_deadlines())


@dataclass(frozen=True, slots=True)
class PlanStatus:
    """What a receipt says about the plans behind an event's routing (guidance 7)."""

    expired_plans: tuple[str, ...]
    deferred_to: str | None
    note: str | None


def plan_status(event: Event, referrals: Iterable[Referral]) -> PlanStatus:
    """Which plans of the event's chain had ended when it happened, and whether the plan in
    force routed it instead (a referral not flagged `expired_plan` was decided by a plan in
    force). Pure: reads the catalog and the referrals."""
    cat = catalog()
    day = event.occurred_at.date()
    chain = cat.chain(event.jurisdiction)
    expired = tuple(c for c in chain if cat.jurisdictions[c].expired_on(day))
    if not expired:
        return PlanStatus((), None, None)
    in_force = list(dict.fromkeys(r.decided_by for r in referrals if not r.expired_plan))
    ended = max(cat.jurisdictions[c].period.end for c in expired)
    if in_force:
        return PlanStatus(expired, in_force[0],
                          f"{', '.join(expired)} ended on {ended.isoformat()}, before the event: "
                          f"routed by the plan in force ({', '.join(in_force)}); the expired "
                          "clause is context only")
    return PlanStatus(expired, None,
                      f"{', '.join(expired)} ended on {ended.isoformat()}, before the event, and "
                      "the plan in force covers no such situation: routed by the expired plan")


def _checks(conds: tuple[CompiledCondition, ...], event: Event) -> list[ConditionCheck]:
    out = []
    for c in conds:
        result, value = c.evaluate(event)
        label = "unknown" if result is None else ("match" if result else "no_match")
        out.append(ConditionCheck(condition=c.text, value=repr(value), result=label))
    return out


def _rule_checks(event: Event, index: Mapping[tuple[str, str], tuple[Slot, ...]], key: str,
                 day: dt.date) -> list[RuleCheck]:
    checks: list[RuleCheck] = []
    for slot in index.get((key, event.kind), ()):
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
                names=tuple(NamedUnit(agency=a, citation=c) for a, c in v.naming.items()),
                action_zh=v.action_zh, expired_plan=day > v.expires, inferred=v.inferred))
    return checks


def _steps(book: RuleBook, chain: tuple[str, ...], event: Event) -> tuple[PackStep, ...]:
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
    return tuple(steps)


def explain(event: Event, book: RuleBook) -> Explanation:
    """The chain walked, each rule version considered for the event's kind — fired, did not
    match (and which condition failed), out of the pack's scope, or not reached because a
    nearer version fired — with its cited clause and the quote naming each unit, and the
    resulting referrals. After an expiry, the plan in force is walked first and the expired
    plan's rules are kept as context."""
    day = event.occurred_at.date()
    referrals = route(event, book)
    deferral = book.deferral(event.jurisdiction, day)
    steps = _steps(book, book.chains[event.jurisdiction], event)
    own = _rule_checks(event, book.index, event.jurisdiction, day)
    in_force = _rule_checks(event, book.deferred_index, deferral.key, day) if deferral else []
    # After an expiry, only the plan in force decides referrals that are not flagged expired.
    used_in_force = deferral is not None and any(not r.expired_plan for r in referrals)
    checks, context = (in_force, own) if used_in_force else (own, in_force)
    return Explanation(
        event_id=event.event_id, kind=event.kind, jurisdiction=event.jurisdiction,
        chain=steps, rules=tuple(checks), referrals=tuple(referrals),
        unrouted=any(is_unrouted(r) for r in referrals),
        plan_in_force=deferral.chain if deferral else (), routed_by_plan_in_force=used_in_force,
        expired_plans=deferral.expired if deferral else (),
        context=tuple(context),
        triage_citation=(book.deferred_triage[deferral.key] if used_in_force and deferral
                         else book.triage[event.jurisdiction]).citation)
