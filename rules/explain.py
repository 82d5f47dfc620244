"""Why an event was routed as it was: the explanation model `engine.explain()` returns, and
its plain-text rendering for `referral-bus route --explain`."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.referrals import Citation, Referral

Outcome = Literal["fired", "no_match", "out_of_scope", "not_reached"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConditionCheck(_Frozen):
    """One condition of a rule, the event's value, and the result."""

    condition: str
    value: str
    result: Literal["match", "no_match", "unknown"]


class RuleCheck(_Frozen):
    """One version of a rule (one pack's) considered for the event."""

    rule_id: str
    pack: str
    key: str
    outcome: Outcome
    reason: str
    checks: tuple[ConditionCheck, ...] = ()
    lead: tuple[str, ...] = ()
    cooperating: tuple[str, ...] = ()
    candidate_lead: tuple[str, ...] = ()
    urgency: str
    constraints: tuple[str, ...] = ()
    inherited: tuple[str, ...] = ()
    remapped: tuple[str, ...] = ()
    citation: Citation
    expired_plan: bool = False
    inferred: bool = False


class PackStep(_Frozen):
    """One pack of the chain walked, nearest first."""

    jurisdiction: str
    title: str
    expired: bool
    in_scope: bool
    scope: str | None = None


class Explanation(_Frozen):
    """The chain walked, every rule considered for the event's kind (matched or not, and why),
    and the referrals that resulted."""

    event_id: uuid.UUID
    kind: str
    jurisdiction: str
    chain: tuple[PackStep, ...]
    rules: tuple[RuleCheck, ...]
    referrals: tuple[Referral, ...]
    unrouted: bool


def _cite(c: Citation) -> str:
    return f"{c.file} {c.clause} 「{c.quote}」"


def render_explanation(expl: Explanation) -> str:
    """Plain text for people who maintain rules: chain, rules considered, referrals."""
    out: list[str] = []
    out.append(f"event {expl.event_id}  kind={expl.kind}  jurisdiction={expl.jurisdiction}")
    chain = " -> ".join(
        f"{s.jurisdiction}{' (expired)' if s.expired else ''}"
        f"{'' if s.in_scope else ' (event out of scope: ' + (s.scope or '') + ')'}"
        for s in expl.chain)
    out.append(f"chain: {chain}")
    out.append("rules considered:")
    if not expl.rules:
        out.append("  (no rule in the chain handles this kind)")
    marks = {"fired": "✔", "no_match": "✘", "out_of_scope": "∅", "not_reached": "·"}
    for r in expl.rules:
        out.append(f"  {marks[r.outcome]} {r.rule_id} [{r.outcome}] {r.reason}")
        for chk in r.checks:
            out.append(f"      {chk.result:8} {chk.condition}  (event: {chk.value})")
        if r.outcome == "fired":
            lead = ", ".join(r.lead) or "(none named: " + ", ".join(r.candidate_lead) + ")"
            out.append(f"      lead: {lead}; cooperating: {', '.join(r.cooperating) or '-'};"
                       f" urgency: {r.urgency}")
            if r.inherited:
                out.append(f"      inherited: {'; '.join(r.inherited)}")
            if r.remapped:
                out.append(f"      abolished agencies mapped: {'; '.join(r.remapped)}")
            for text in r.constraints:
                out.append(f"      constraint: {text}")
        out.append(f"      cites {_cite(r.citation)}{'  [inferred]' if r.inferred else ''}")
    out.append("referrals:")
    if not expl.referrals and not expl.unrouted:
        out.append("  (none: this kind acts on an open case and assigns no duty)")
    if expl.unrouted:
        out.append("  (no rule covered the event: sent for manual triage)")
    for ref in expl.referrals:
        flags = " [expired plan]" if ref.expired_plan else ""
        out.append(f"  {ref.role:11} {ref.agency:40} {ref.urgency:12} {ref.rule_id}{flags}")
        out.append(f"      decided by {ref.decided_by}: {_cite(ref.citation)}")
    return "\n".join(out)
