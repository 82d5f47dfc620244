"""The rule-pack file format: pydantic models mirroring `rules/packs/<jurisdiction>.yaml`.

This is the first of two layers (like Alertmanager's `config.Route`): it checks one pack on its
own — shape, vocabulary (agency codes, event kinds, urgency levels, field paths) and internal
consistency — with exact messages. Checks that need the whole chain (overrides, inheritance)
happen in `engine.compile_packs`, which builds the immutable routing structure.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from rules.catalog import catalog
from rules.fields import is_known_path

KEY_PATTERN = r"^[a-z][a-z0-9_]*$"
#: Rule-id suffixes the engine reserves for its own referrals (see engine.is_triage).
RESERVED_KEYS = frozenset({"unrouted", "triage"})

Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains"]
_NUMERIC_OPS = frozenset({"lt", "le", "gt", "ge"})
_LIST_OPS = frozenset({"in", "not_in"})


def _as_tuple(value: Any) -> Any:
    """Accept a scalar where a list is expected (`kind: x` == `kind: [x]`)."""
    if isinstance(value, str):
        return (value,)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """The clause a rule comes from, with a short verbatim quote (checked by `rules lint`)."""

    file: str = Field(min_length=1)
    clause: str = Field(min_length=1)
    quote: str = Field(min_length=2, max_length=120)


def _as_naming(value: Any) -> Any:
    """`names: {police: 依法移送公安机关处理}` is a quote in the rule's own clause."""
    if isinstance(value, str):
        return {"quote": value}
    return value


class Naming(_Strict):
    """Where the plan names one unit of a rule: a verbatim quote that contains the unit's name as
    the plan writes it (`rules lint` checks both). File and clause default to the rule's source;
    a unit named elsewhere (红河's member list, XX 第四十条 for the police) gives its own."""

    file: str | None = None
    clause: str | None = None
    quote: str = Field(min_length=2, max_length=120)

    def cited_in(self, rule_source: Source) -> Source:
        """The quote with its file and clause, those of the rule's source unless given."""
        return Source(file=self.file or rule_source.file, clause=self.clause or rule_source.clause,
                      quote=self.quote)


class NotRouted(_Strict):
    """A clause of the plan that assigns a duty but that no rule routes, and why (`rules coverage`)."""

    clause: str = Field(min_length=2)
    reason: str = Field(min_length=10)


class Condition(_Strict):
    """One test on an event field. A field whose value is unknown (null) does not match,
    unless `if_unknown: match` (used by scope filters, which keep doubtful cases in scope)."""

    field: str
    op: Op = "eq"
    value: Any = None
    if_unknown: Literal["match", "no_match"] = "no_match"

    @model_validator(mode="after")
    def _check(self) -> Condition:
        if not is_known_path(self.field):
            raise ValueError(f"unknown event field {self.field!r}")
        if self.op in _NUMERIC_OPS and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float)
        ):
            raise ValueError(f"{self.field} {self.op}: value must be a number")
        if self.op in _LIST_OPS and not isinstance(self.value, list | tuple):
            raise ValueError(f"{self.field} {self.op}: value must be a list")
        if self.op in ("eq", "ne", "contains") and isinstance(self.value, list | tuple | dict):
            raise ValueError(f"{self.field} {self.op}: value must be a single value")
        return self

    def describe(self) -> str:
        return f"{self.field} {self.op} {self.value!r}"


class When(_Strict):
    """Which events a rule is about: one or more event kinds, and conditions on their fields.
    `all` must all match; if `any` is given, at least one of them must match too."""

    kind: Annotated[tuple[str, ...], BeforeValidator(_as_tuple)] = Field(min_length=1)
    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()

    @model_validator(mode="after")
    def _kinds_known(self) -> When:
        kinds = catalog().event_kinds
        for k in self.kind:
            if k not in kinds:
                raise ValueError(f"unknown event kind {k!r}")
            if not kinds[k].routed:
                raise ValueError(f"event kind {k!r} acts on an open case and assigns no duty: no rule routes it")
        if len(set(self.kind)) != len(self.kind):
            raise ValueError("duplicate event kind in when.kind")
        return self


class Fields(_Strict):
    """Per-rule change to the need-to-know projection of the agencies it routes to."""

    add: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _paths_known(self) -> Fields:
        for p in (*self.add, *self.drop):
            root = p.split(".")[0]
            if not (is_known_path(p) or root in ("person", "location", "reporter")):
                raise ValueError(f"unknown event field {p!r}")
        return self


def _check_agencies(where: str, codes: tuple[str, ...]) -> None:
    agencies = catalog().agencies
    for code in codes:
        if code not in agencies:
            raise ValueError(f"{where}: unknown agency {code!r}")
        if code == "unspecified":
            raise ValueError(
                f"{where}: 'unspecified' is not routable; leave lead empty and list "
                "candidate_lead, or omit the unnamed partner and say so in notes"
            )
    if len(set(codes)) != len(codes):
        raise ValueError(f"{where}: duplicate agency")


class Rule(_Strict):
    """One duty from a plan: when it applies, who leads, who cooperates, what, how fast, with
    which constraints, and the clause that says so.

    In an `override`, fields left out (`when`, `lead`, `cooperating`, `action`, `urgency`) are
    inherited from the parent's rule with the same key; constraints are always added to the
    parent's, never replace them."""

    key: str = Field(pattern=KEY_PATTERN, max_length=64)
    override: bool = False
    ref: tuple[str, ...] = Field(default=(), description="Reference-extraction rule ids covered.")
    when: When | None = None
    lead: tuple[str, ...] | None = None
    candidate_lead: tuple[str, ...] = ()
    cooperating: tuple[str, ...] | None = None
    action: str | None = Field(default=None, min_length=3)
    action_zh: str | None = Field(
        default=None, min_length=2,
        description="The action in the clause's own words (verbatim fragments joined by ；).")
    urgency: str | None = None
    constraints: tuple[str, ...] = ()
    fields: Fields | None = None
    source: Source
    also_cited: tuple[Source, ...] = Field(
        default=(), description="Further clauses (often in other seeds) showing the same duty.")
    names: dict[str, Annotated[Naming, BeforeValidator(_as_naming)]] = Field(
        default_factory=dict,
        description="Per unit of lead and cooperating: the quote naming it as the plan writes it.")
    inferred: bool = False
    notes: str = ""

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.key in RESERVED_KEYS:
            raise ValueError(f"rule key {self.key!r} is reserved")
        if not self.override:
            missing = [n for n in ("when", "lead", "action", "action_zh", "urgency")
                       if getattr(self, n) is None]
            if missing:
                raise ValueError(f"rule {self.key}: missing {', '.join(missing)} "
                                 "(only an override may inherit them)")
        if self.lead is not None:
            _check_agencies(f"rule {self.key} lead", self.lead)
        if self.cooperating is not None:
            _check_agencies(f"rule {self.key} cooperating", self.cooperating)
            if self.lead and set(self.lead) & set(self.cooperating):
                raise ValueError(f"rule {self.key}: an agency is both lead and cooperating")
        _check_agencies(f"rule {self.key} candidate_lead", self.candidate_lead)
        if self.candidate_lead and self.lead:
            raise ValueError(f"rule {self.key}: candidate_lead is only for a rule with no lead")
        if self.urgency is not None and self.urgency not in catalog().urgency_levels:
            raise ValueError(f"rule {self.key}: unknown urgency {self.urgency!r}")
        if len(set(self.constraints)) != len(self.constraints):
            raise ValueError(f"rule {self.key}: duplicate constraint")
        agencies = catalog().agencies
        for code in self.names:
            if code not in agencies:
                raise ValueError(f"rule {self.key} names: unknown agency {code!r}")
        units = (*(self.lead or ()), *(self.cooperating or ()))
        unnamed = [c for c in units if c not in self.names]
        if unnamed and not self.override:
            raise ValueError(f"rule {self.key}: {', '.join(unnamed)} not named: add names.<unit>, "
                             "a quote of the plan naming it")
        return self


class PackConstraint(_Strict):
    """A constraint a plan sets for a whole section (privacy, no secondary harm): added to every
    rule of the listed event kinds in this jurisdiction and every jurisdiction below it."""

    id: str = Field(pattern=KEY_PATTERN)
    text: str = Field(min_length=3)
    kinds: tuple[str, ...] = Field(min_length=1, description="Event kinds; fnmatch patterns.")
    ref: tuple[str, ...] = ()
    source: Source

    @model_validator(mode="after")
    def _patterns_match(self) -> PackConstraint:
        kinds = catalog().event_kinds
        for pattern in self.kinds:
            if not any(fnmatchcase(k, pattern) for k in kinds):
                raise ValueError(f"constraint {self.id}: kind pattern {pattern!r} matches no event kind")
        return self

    def applies_to(self, kind: str) -> bool:
        return any(fnmatchcase(kind, p) for p in self.kinds)


class Scope(_Strict):
    """Which events a plan covers at all (山东: women and children). An event out of scope skips
    this pack's rules and falls through to the parent's. In scope if any condition matches."""

    description: str
    any: tuple[Condition, ...] = Field(min_length=1)
    source: Source


class Triage(_Strict):
    """Where and how fast events no rule covers go: the joint-conference office, and the clause
    that makes it the body handling the daily work."""

    agency: str = "anti_trafficking_office"
    urgency: str = "prompt"
    source: Source

    @model_validator(mode="after")
    def _check(self) -> Triage:
        _check_agencies("triage", (self.agency,))
        if self.urgency not in catalog().urgency_levels:
            raise ValueError(f"triage: unknown urgency {self.urgency!r}")
        return self


class Pack(_Strict):
    """One jurisdiction's plan as data. `parent` must match the jurisdiction catalog."""

    jurisdiction: str
    parent: str | None
    title: str = ""
    seed: str | None = Field(default=None, description="The plan text in the seeds folder, if any.")
    generation_common: bool = Field(
        default=False,
        description="True for a parent plan with no seed: it holds only what the seeds of its "
                    "generation show in common, each rule citing those seeds.")
    scope: Scope | None = None
    triage: Triage | None = None
    constraints: tuple[PackConstraint, ...] = ()
    rules: tuple[Rule, ...] = ()
    not_routed: tuple[NotRouted, ...] = Field(
        default=(), description="Clauses of this plan that assign a duty no rule routes, and why.")

    @model_validator(mode="after")
    def _check(self) -> Pack:
        cat = catalog()
        j = cat.jurisdictions.get(self.jurisdiction)
        if j is None:
            raise ValueError(f"unknown jurisdiction {self.jurisdiction!r}")
        if self.parent != j.parent:
            raise ValueError(f"pack {self.jurisdiction}: parent {self.parent!r} does not match "
                             f"the jurisdiction catalog ({j.parent!r})")
        if (self.seed or None) != (j.seed or None):
            raise ValueError(f"pack {self.jurisdiction}: seed {self.seed!r} does not match "
                             f"the jurisdiction catalog ({j.seed!r})")
        if self.generation_common == j.in_seed:
            raise ValueError(f"pack {self.jurisdiction}: generation_common must be "
                             f"{not j.in_seed} (in_seed is {j.in_seed})")
        seen: set[str] = set()
        for r in self.rules:
            if r.key in seen:
                raise ValueError(f"pack {self.jurisdiction}: duplicate rule key {r.key!r}")
            seen.add(r.key)
        ids = [c.id for c in self.constraints]
        if len(set(ids)) != len(ids):
            raise ValueError(f"pack {self.jurisdiction}: duplicate constraint id")
        if self.seed is not None:
            for r in self.rules:
                if r.source.file != self.seed:
                    raise ValueError(f"pack {self.jurisdiction}: rule {r.key} cites "
                                     f"{r.source.file}, not this plan's text {self.seed}")
        if self.parent is None and self.triage is None:
            raise ValueError(f"pack {self.jurisdiction}: a root pack must declare triage")
        if self.not_routed and self.seed is None:
            raise ValueError(f"pack {self.jurisdiction}: not_routed needs a plan text (seed)")
        clauses = [n.clause for n in self.not_routed]
        if len(set(clauses)) != len(clauses):
            raise ValueError(f"pack {self.jurisdiction}: a clause is listed twice in not_routed")
        return self


def source_files(pack: Pack) -> set[str]:
    """Every seed file a pack cites."""
    out = {r.source.file for r in pack.rules} | {c.source.file for c in pack.constraints}
    out |= {s.file for r in pack.rules for s in r.also_cited}
    if pack.scope:
        out.add(pack.scope.source.file)
    if pack.triage:
        out.add(pack.triage.source.file)
    return out

