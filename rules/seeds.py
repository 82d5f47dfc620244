"""The plan texts (seeds) and their clauses: find the text span of a cited clause and check that
a quote lies within it, ignoring punctuation and whitespace variants (the packs and the
reference extraction mix ASCII, fullwidth and Chinese punctuation).

Clause references come in the shapes the seeds use:

* articles (XX市 000, 西安 001): ``第四十条``, ``第四十条第二款``, ``第五条 para 3``
  (款 and para both pick the n-th paragraph of the article);
* numbered sections (山东 002, 云阳 004, 红河 003): ``二、(一)2.(3)——2`` — section 二、,
  sub-section (一), item 2., measure (3), then the n-th "——" dash item inside it;
  ``三、二是`` — the paragraph starting 二是 inside section 三、; ``二、 para 2`` — the n-th
  paragraph of a section that has paragraphs without a number of their own.

`Seed.paragraphs()` walks the plan text proper (from its first article or numbered section; the
notice, title and preamble before it assign nothing) and gives every paragraph its canonical
clause label: ``第十五条`` for a one-paragraph article, ``第十五条第二款`` otherwise; the number
path for a numbered line (``二、(一)2.(2)——3``); the enclosing path with `` para N`` for a line
without a number. Every label resolves back to its paragraph with `clause_text`.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rules.errors import SeedError

__all__ = ["ENV_VAR", "Paragraph", "Seed", "SeedError", "default_seeds_dir", "load_seed", "normalise"]

ENV_VAR = "REFERRAL_BUS_SEEDS_DIR"
_REPO_ROOT = Path(__file__).resolve().parent.parent

_CN = "一二三四五六七八九十百零"
_ARTICLE = re.compile(rf"^第[{_CN}]+条")
_CHAPTER = re.compile(rf"^第[{_CN}]+章")
_ARTICLE_REF = re.compile(rf"^(第[{_CN}]+条)(?:第([{_CN}]+)款)?(?:\s*para\s*(\d+))?$")
_SECTION_PARA = re.compile(r"^(.*?)\s+para\s*(\d+)$")
_SECTION_TOKEN = re.compile(
    rf"([{_CN}]+、)|(\([{_CN}]+\))|(\d+\.)|(\(\d+\))|(——\d+)|([{_CN}]+是)")
_LEVELS = (
    re.compile(rf"^[{_CN}]+、"),
    re.compile(rf"^\([{_CN}]+\)"),
    re.compile(r"^\d+\.(?!\d)"),
    re.compile(r"^\(\d+\)"),
    re.compile(r"^——"),
    re.compile(rf"^[{_CN}]+是"),
)
_CN_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")}


def default_seeds_dir() -> Path:
    """$REFERRAL_BUS_SEEDS_DIR, else ../shared/seeds beside the repository root."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return _REPO_ROOT.parent / "shared" / "seeds"


def normalise(text: str) -> str:
    """NFKC, then drop whitespace, punctuation and symbols: what remains must match verbatim."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text
                   if not ch.isspace() and unicodedata.category(ch)[0] not in "PSZ")


def _cn_number(s: str) -> int:
    """一..九十九 (enough for article numbers)."""
    if s == "十":
        return 10
    if "十" in s:
        tens, _, units = s.partition("十")
        return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[units] if units else 0)
    return _CN_DIGITS[s]


def _cn_numeral(n: int) -> str:
    """1..99 in Chinese numerals (款 labels)."""
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    tens, units = divmod(n, 10)
    return (digits[tens] if tens > 1 else "") + "十" + (digits[units] if units else "")


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of the plan text proper, with its canonical clause label."""

    label: str
    text: str
    line: int


@dataclass(frozen=True)
class Seed:
    """One plan text, split into lines normalised for clause parsing (NFKC, stripped)."""

    name: str
    lines: tuple[str, ...]

    def _span_text(self, start: int, end: int) -> str:
        return "\n".join(self.lines[start:end])

    def _article(self, ref: re.Match[str]) -> str:
        head, kuan, para = ref.group(1), ref.group(2), ref.group(3)
        start = next((i for i, ln in enumerate(self.lines) if ln.startswith(head)), None)
        if start is None:
            raise SeedError(f"{self.name}: no {head}")
        end = next((i for i in range(start + 1, len(self.lines))
                    if _ARTICLE.match(self.lines[i]) or _CHAPTER.match(self.lines[i])),
                   len(self.lines))
        n = _cn_number(kuan) if kuan else (int(para) if para else None)
        if n is None:
            return self._span_text(start, end)
        paras = [i for i in range(start, end) if self.lines[i]]
        if not 1 <= n <= len(paras):
            raise SeedError(f"{self.name}: {head} has {len(paras)} paragraph(s), not {n}")
        return self.lines[paras[n - 1]]

    def _section(self, clause: str) -> str:
        para = _SECTION_PARA.match(clause.strip())
        if para:
            start, end = self._section_span(para.group(1))
            lines = [i for i in range(start, end) if self.lines[i]]
            n = int(para.group(2))
            if not 1 <= n <= len(lines):
                raise SeedError(f"{self.name}: {para.group(1)} has {len(lines)} paragraph(s), not {n}")
            return self.lines[lines[n - 1]]
        return self._span_text(*self._section_span(clause))

    def _section_span(self, clause: str) -> tuple[int, int]:
        compact = clause.replace(" ", "")
        tokens = [m.group(0) for m in _SECTION_TOKEN.finditer(compact)]
        if not tokens or "".join(tokens) != compact:
            raise SeedError(f"{self.name}: cannot parse clause {clause!r}")
        start, end = 0, len(self.lines)
        for tok in tokens:
            if tok.startswith("——"):
                n = int(tok[2:])
                dashes = [i for i in range(start, end) if self.lines[i].startswith("——")]
                if not 1 <= n <= len(dashes):
                    raise SeedError(f"{self.name}: {clause}: only {len(dashes)} dash item(s)")
                start = dashes[n - 1]
                end = next((i for i in range(start + 1, end)
                            if self.lines[i].startswith("——")), end)
                continue
            level = next(i for i, p in enumerate(_LEVELS) if p.match(tok))
            found = next((i for i in range(start, end) if self.lines[i].startswith(tok)), None)
            if found is None:
                raise SeedError(f"{self.name}: {clause}: no {tok!r} here")
            stop = next((i for i in range(found + 1, end)
                         if any(p.match(self.lines[i]) for p in _LEVELS[: level + 1])
                         and not _LEVELS[4].match(self.lines[i])), end)
            start, end = found, stop
        return start, end

    def paragraphs(self) -> tuple[Paragraph, ...]:
        """Every paragraph of the plan text proper, with its canonical clause label."""
        articled = any(_ARTICLE.match(ln) for ln in self.lines)
        return self._article_paragraphs() if articled else self._section_paragraphs()

    def _article_paragraphs(self) -> tuple[Paragraph, ...]:
        out: list[Paragraph] = []
        head: str | None = None
        group: list[int] = []

        def flush() -> None:
            for k, i in enumerate(group, 1):
                label = head if len(group) == 1 else f"{head}第{_cn_numeral(k)}款"
                out.append(Paragraph(str(label), self.lines[i], i))

        for i, ln in enumerate(self.lines):
            if _CHAPTER.match(ln):
                if head is not None:
                    flush()
                head, group = None, []
                continue
            m = _ARTICLE.match(ln)
            if m:
                if head is not None:
                    flush()
                head, group = m.group(0), [i]
            elif ln and head is not None:
                group.append(i)
        if head is not None:
            flush()
        return tuple(out)

    def _section_paragraphs(self) -> tuple[Paragraph, ...]:
        out: list[Paragraph] = []
        stack: list[tuple[int, str]] = []  # (level, token) of the enclosing numbers
        dash = 0
        started = False
        counts: dict[str, int] = {}
        for i, ln in enumerate(self.lines):
            if not ln:
                continue
            level = next((k for k, p in enumerate(_LEVELS) if k != 4 and p.match(ln)), None)
            if level is None and not started:
                continue
            if level == 0:
                started = True
            if level is not None:
                token = _LEVELS[level].match(ln).group(0)  # type: ignore[union-attr]
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, token))
                dash = 0
                label = "".join(t for _, t in stack)
                counts[label] = 1
                out.append(Paragraph(label, ln, i))
                continue
            path = "".join(t for _, t in stack)
            if _LEVELS[4].match(ln):
                dash += 1
                label = f"{path}——{dash}"
                counts[label] = 1
                out.append(Paragraph(label, ln, i))
                continue
            # A line without a number: the n-th paragraph of the enclosing span.
            owner = f"{path}——{dash}" if dash else path
            counts[owner] = counts.get(owner, 1) + 1
            out.append(Paragraph(f"{owner} para {counts[owner]}", ln, i))
        return tuple(out)

    def paragraph_at(self, quote: str, clause: str) -> Paragraph | None:
        """The paragraph of `clause` the quote lies in (None if it is not verbatim there)."""
        span = normalise(self.clause_text(clause))
        q = normalise(quote)
        if q not in span:
            return None
        for p in self.paragraphs():
            if q in normalise(p.text) and normalise(p.text) in span:
                return p
        return None

    def clause_text(self, clause: str) -> str:
        """The text of the cited clause (raises SeedError if it cannot be found)."""
        ref = _ARTICLE_REF.match(unicodedata.normalize("NFKC", clause).strip())
        if ref:
            return self._article(ref)
        return self._section(unicodedata.normalize("NFKC", clause))

    def quote_in_clause(self, quote: str, clause: str) -> bool:
        """True if the quote (punctuation and spaces aside) lies within the clause's text."""
        return normalise(quote) in normalise(self.clause_text(clause))


@cache
def load_seed(folder: Path, name: str) -> Seed:
    """Read one seed file from the folder (cached)."""
    path = folder / name
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SeedError(f"cannot read seed {path}: {exc.strerror}") from exc
    lines = tuple(unicodedata.normalize("NFKC", ln).strip() for ln in raw.splitlines())
    return Seed(name, lines)
