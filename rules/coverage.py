"""Which clauses of each plan text assign a duty, and whether a rule routes each one.

How duty clauses are enumerated (mechanically, so that the check is honest):

* The unit of a clause is a **paragraph** of the plan text proper (`Seed.paragraphs()`): an
  article or one of its 款 (XX市, 西安), a numbered measure or one of its "——" items (山东, 云阳),
  a "一是…" paragraph (红河). The notice, title and preamble before the first article or
  numbered section are not part of it.
* A paragraph **assigns a duty** when it names at least one unit — an agency of the catalog by
  one of its `names` (as the plans write them: 公安, 民政, 妇联, 团县委 …), or a government body
  (`other_bodies`: 各级政府, 县政府 …) — and either carries a duty tag ``(X负责, Y配合)`` or a
  duty word: 负责, 配合, 牵头, 协同, 会同, 协助, 承担, 应当, 应, 要, 须 (words such as 主要,
  需要, 要求, 相应, 应对 are not duty words). A later 款 of an article that names no unit
  continues the article's first sentence (XX 第三十一条第三款: 指导、监督… under 卫生健康部门要…):
  it has that paragraph's units and duty.
* A duty clause is **covered** when a rule of the plan's own pack cites it — as its `source` or
  in `also_cited` — with a quote that lies in that paragraph, or when it is the source of the
  pack's `triage`. Otherwise the pack must list it under `not_routed` with the reason; a clause
  without either is a problem (`rules lint`, `rules coverage`, and the test suite fail on it).
* A paragraph that names no unit but is cited by a rule (红河's "三、二是 … 快速查找") is
  reported as covered too: its duty comes from the parent plan (inherited lead).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rules.catalog import catalog
from rules.errors import SeedError
from rules.model import Pack, Source
from rules.seeds import Paragraph, Seed, load_seed, normalise

__all__ = ["ClauseCoverage", "SeedCoverage", "coverage", "named_units", "names_unit"]

#: A duty tag at the end of a measure: (省教育厅负责,团省委配合), (联席会议各成员单位负责).
_TAG = re.compile(r"[(（][^()（）]*(?:负责|配合)[^()（）]*[)）]\s*$")
#: Duty words. 要 and 应 only as modal verbs: not in 主要, 需要, 重要, 纲要, 必要, 只要, 要求,
#: 要点, nor in 相应, 适应, 反应, 回应, 供应, 响应, 对应, 理应, 应对, 应急, 应用.
_DUTY_WORD = re.compile(
    r"负责|配合|牵头|协同|会同|协助|承担|应当|须"
    r"|(?<![需主重纲必只])要(?![求点])"
    r"|(?<![相适反回供响对理])应(?![对急用当])")


def _blank_other_bodies(text: str) -> str:
    """The text with government names blanked, so that 人民政府 does not read as 民政."""
    for name in catalog().other_body_names:
        text = text.replace(normalise(name), "□" * len(normalise(name)))
    return text


def names_unit(text: str, code: str) -> bool:
    """True if `text` names the agency `code` as the plans write it."""
    norm = _blank_other_bodies(normalise(text))
    return any(normalise(n) in norm for n in catalog().agencies[code].names)


def named_units(text: str) -> tuple[str, ...]:
    """Agency codes named in `text`, plus "government" for a government body."""
    norm = normalise(text)
    out = ["government"] if any(normalise(n) in norm for n in catalog().other_body_names) else []
    blanked = _blank_other_bodies(norm)
    for code, agency in catalog().agencies.items():
        if any(normalise(n) in blanked for n in agency.names):
            out.append(code)
    return tuple(sorted(out))


_KUAN = re.compile(r"^(第.+条)第.+款$")


def assigns_duty(p: Paragraph) -> bool:
    """The enumeration rule of the module docstring, for one paragraph on its own."""
    return bool(named_units(p.text)) and bool(_TAG.search(p.text) or _DUTY_WORD.search(p.text))


def _duties(paragraphs: Iterable[Paragraph]) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Units and duty of each paragraph; a later 款 naming no unit continues its article's first
    paragraph and has its units and duty."""
    out: dict[str, tuple[tuple[str, ...], bool]] = {}
    first: dict[str, tuple[tuple[str, ...], bool]] = {}
    for p in paragraphs:
        units, duty = named_units(p.text), assigns_duty(p)
        m = _KUAN.match(p.label)
        if m:
            first.setdefault(m.group(1), (units, duty))
            if not units:
                units, duty = first[m.group(1)]
        out[p.label] = (units, duty)
    return out


@dataclass(frozen=True)
class ClauseCoverage:
    """One paragraph of a plan: does it assign a duty, which rules route it, or why none does."""

    label: str
    text: str
    units: tuple[str, ...]
    duty: bool
    rules: tuple[str, ...]
    reason: str | None

    @property
    def covered(self) -> bool:
        return bool(self.rules)


@dataclass(frozen=True)
class SeedCoverage:
    """Coverage of one plan text by its pack."""

    jurisdiction: str
    seed: str
    clauses: tuple[ClauseCoverage, ...]
    #: not_routed entries that are stale (the clause is routed, or assigns no duty) or unknown.
    reason_problems: tuple[str, ...]

    @property
    def problems(self) -> tuple[str, ...]:
        """Every problem: duty clauses neither routed nor explained, then bad reasons."""
        unexplained = tuple(
            f"{self.jurisdiction}.yaml: {c.label}: assigns a duty (names {', '.join(c.units)}) "
            "but no rule routes it and not_routed gives no reason" for c in self.unexplained)
        return unexplained + self.reason_problems

    @property
    def duty_clauses(self) -> tuple[ClauseCoverage, ...]:
        return tuple(c for c in self.clauses if c.duty)

    @property
    def covered(self) -> tuple[ClauseCoverage, ...]:
        return tuple(c for c in self.duty_clauses if c.covered)

    @property
    def not_routed(self) -> tuple[ClauseCoverage, ...]:
        return tuple(c for c in self.duty_clauses if not c.covered and c.reason)

    @property
    def unexplained(self) -> tuple[ClauseCoverage, ...]:
        return tuple(c for c in self.duty_clauses if not c.covered and not c.reason)

    @property
    def covered_without_duty(self) -> tuple[ClauseCoverage, ...]:
        return tuple(c for c in self.clauses if not c.duty and c.covered)


def _cited(pack: Pack) -> Iterable[tuple[str, Source]]:
    for r in pack.rules:
        yield f"{pack.jurisdiction}.{r.key}", r.source
        for s in r.also_cited:
            yield f"{pack.jurisdiction}.{r.key}", s
    if pack.triage is not None:
        yield f"{pack.jurisdiction} triage", pack.triage.source


def _label_of(seed: Seed, s: Source) -> str | None:
    try:
        p = seed.paragraph_at(s.quote, s.clause)
    except SeedError:
        return None
    return p.label if p else None


def seed_coverage(pack: Pack, seeds_dir: Path) -> SeedCoverage:
    """Coverage of the plan text of `pack` (which must have a seed)."""
    assert pack.seed is not None
    seed = load_seed(seeds_dir, pack.seed)
    paragraphs = seed.paragraphs()
    labels = {p.label for p in paragraphs}
    by_label: dict[str, list[str]] = {}
    for rule_id, src in _cited(pack):
        if src.file != pack.seed:
            continue
        label = _label_of(seed, src)
        if label is not None:
            by_label.setdefault(label, [])
            if rule_id not in by_label[label]:
                by_label[label].append(rule_id)
    reasons = {n.clause: n.reason for n in pack.not_routed}
    problems: list[str] = []
    clauses = []
    duties = _duties(paragraphs)
    for p in paragraphs:
        units, duty = duties[p.label]
        rules = tuple(by_label.get(p.label, ()))
        reason = reasons.get(p.label)
        clauses.append(ClauseCoverage(p.label, p.text, units, duty, rules, reason))
        where = f"{pack.jurisdiction}.yaml: {p.label}"
        if reason and rules:
            problems.append(f"{where}: listed in not_routed but routed by {', '.join(rules)}")
        if reason and not duty:
            problems.append(f"{where}: listed in not_routed but assigns no duty")
    for clause in reasons:
        if clause not in labels:
            problems.append(f"{pack.jurisdiction}.yaml: not_routed {clause!r} is no paragraph of "
                            f"{pack.seed} (labels as `rules coverage` prints them)")
    return SeedCoverage(pack.jurisdiction, pack.seed, tuple(clauses), tuple(problems))


def coverage(packs: Mapping[str, Pack], seeds_dir: Path) -> tuple[SeedCoverage, ...]:
    """Coverage of every plan text that has a pack, in jurisdiction order."""
    return tuple(seed_coverage(p, seeds_dir) for _, p in sorted(packs.items())
                 if p.seed is not None)
