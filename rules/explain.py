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


class NamedUnit(_Frozen):
    """A unit a rule refers to, and the verbatim quote of the plan naming it."""

    agency: str
    citation: Citation


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
    names: tuple[NamedUnit, ...] = ()
    action_zh: str = ""
    expired_plan: bool = False
    inferred: bool = False

    def naming(self, agency: str) -> Citation | None:
        """The quote naming `agency` in this rule (or the version it inherits it from)."""
        return next((n.citation for n in self.names if n.agency == agency), None)


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
    #: After an expiry (guidance 7): the chain in force, whether it routed the event, the plans
    #: that had ended, and the rules of the chain that did not route it (context only).
    plan_in_force: tuple[str, ...] = ()
    routed_by_plan_in_force: bool = False
    expired_plans: tuple[str, ...] = ()
    context: tuple[RuleCheck, ...] = ()
    triage_citation: Citation | None = None

    def naming(self, referral: Referral) -> Citation | None:
        """The clause and quote naming the referral's agency (the triage clause for triage)."""
        for r in self.rules:
            if r.outcome == "fired" and referral.rule_id == r.rule_id:
                return r.naming(referral.agency)
        return self.triage_citation


def _cite(c: Citation) -> str:
    return f"{c.file} {c.clause} 「{c.quote}」"


_MARKS = {"fired": "✔", "no_match": "✘", "out_of_scope": "∅", "not_reached": "·"}


def _render_rules(rules: tuple[RuleCheck, ...], out: list[str]) -> None:
    if not rules:
        out.append("  (no rule in the chain handles this kind)")
    for r in rules:
        out.append(f"  {_MARKS[r.outcome]} {r.rule_id} [{r.outcome}] {r.reason}")
        for chk in r.checks:
            out.append(f"      {chk.result:8} {chk.condition}  (event: {chk.value})")
        if r.outcome == "fired":
            lead = ", ".join(r.lead) or "(none named: " + ", ".join(r.candidate_lead) + ")"
            out.append(f"      lead: {lead}; cooperating: {', '.join(r.cooperating) or '-'};"
                       f" urgency: {r.urgency}")
            if r.action_zh:
                out.append(f"      action: {r.action_zh}")
            if r.inherited:
                out.append(f"      inherited: {'; '.join(r.inherited)}")
            if r.remapped:
                out.append(f"      abolished agencies mapped: {'; '.join(r.remapped)}")
            for text in r.constraints:
                out.append(f"      constraint: {text}")
        out.append(f"      cites {_cite(r.citation)}{'  [inferred]' if r.inferred else ''}")


def render_explanation(expl: Explanation) -> str:
    """Plain text for people who maintain rules: chain, rules considered, referrals, and for
    each referral the clause and verbatim quote naming its agency."""
    out: list[str] = []
    out.append(f"event {expl.event_id}  kind={expl.kind}  jurisdiction={expl.jurisdiction}")
    chain = " -> ".join(
        f"{s.jurisdiction}{' (expired)' if s.expired else ''}"
        f"{'' if s.in_scope else ' (event out of scope: ' + (s.scope or '') + ')'}"
        for s in expl.chain)
    out.append(f"chain: {chain}")
    if expl.plan_in_force:
        ended = ", ".join(expl.expired_plans)
        force = " -> ".join(expl.plan_in_force)
        if expl.routed_by_plan_in_force:
            out.append(f"plan period: {ended} had ended when the event happened; routed by the "
                       f"plan in force: {force} (the expired plan's rules below are context)")
        else:
            out.append(f"plan period: {ended} had ended when the event happened, but the plan in "
                       f"force ({force}) covers no such situation: routed by the expired plan")
    out.append("rules considered:")
    _render_rules(expl.rules, out)
    if expl.context:
        label = ("expired plan, for context (not routed)" if expl.routed_by_plan_in_force
                 else "plan in force, considered first (nothing fired)")
        out.append(f"{label}:")
        _render_rules(expl.context, out)
    out.append("referrals:")
    if not expl.referrals and not expl.unrouted:
        out.append("  (none: this kind acts on an open case and assigns no duty)")
    if expl.unrouted:
        out.append("  (no rule covered the event: sent for manual triage)")
    for ref in expl.referrals:
        flags = " [expired plan]" if ref.expired_plan else ""
        out.append(f"  {ref.role:11} {ref.agency:40} {ref.urgency:12} {ref.rule_id}{flags}")
        out.append(f"      decided by {ref.decided_by}: {_cite(ref.citation)}")
        named = expl.naming(ref)
        if named is not None:
            out.append(f"      named in {_cite(named)}")
        if ref.action_zh:
            out.append(f"      {ref.action_zh}")
    return "\n".join(out)
