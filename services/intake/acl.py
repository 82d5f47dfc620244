"""The ACL plan (`deploy/acl.yaml`): load, expand per agency, and apply where the broker can.

aiokafka's admin client has no ACL call, so `apply_plan` sends Kafka's CreateAcls request
(API key 30) through it; a broker without an authorizer (the local Tansu) refuses it, and the
command says so instead of pretending.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bus.credentials import agency_matches
from bus.settings import KafkaSettings
from rules.catalog import catalog
from topics import catalog as topics
from topics.catalog import (
    BROADCAST_CHANNELS,
    TopicSpec,
    broadcast_topic,
    current_agencies,
    gate_topics,
    referral_topic_name,
    refusals_topic_name,
)

DEFAULT_PLAN = Path(__file__).resolve().parents[2] / "deploy" / "acl.yaml"

Operation = Literal["Read", "Write", "Describe"]
_OPS = {"Read": 3, "Write": 4, "Describe": 8}
_RESOURCES = {"topic": 2, "group": 3}
_PATTERNS = {"literal": 3, "prefixed": 4}
_ALLOW = 3


class AclUnsupported(RuntimeError):
    """The broker does not accept ACLs (no authorizer, or no CreateAcls API)."""


class Grant(BaseModel):
    """One line of `allow`: exactly one resource form, and the operations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str | None = None
    own_referrals: bool = False
    all_referrals: bool = False
    all_broadcasts: bool = False
    own_gate_topics: bool = False
    all_gate_topics: bool = False
    own_refusals: bool = False
    all_refusals: bool = False
    group: str | None = None
    group_prefix: str | None = None
    ops: tuple[Operation, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_resource(self) -> Grant:
        forms = [self.topic is not None, self.own_referrals, self.all_referrals, self.all_broadcasts,
                 self.own_gate_topics, self.all_gate_topics, self.own_refusals, self.all_refusals,
                 self.group is not None, self.group_prefix is not None]
        if sum(forms) != 1:
            raise ValueError("each grant names exactly one resource")
        if self.topic is not None and not isinstance(getattr(topics, self.topic, None), TopicSpec):
            raise ValueError(f"unknown topic constant {self.topic!r} (see topics/catalog.py)")
        return self


class PrincipalPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    principal: str = Field(pattern=r"^User:")
    for_each_agency: bool = False
    #: With for_each_agency: only agencies matching one of these (`police.*`: police and its units).
    agencies: tuple[str, ...] = ()
    allow: tuple[Grant, ...]

    @model_validator(mode="after")
    def _agency_forms(self) -> PrincipalPlan:
        templated = "{agency}" in self.principal
        if templated != self.for_each_agency:
            raise ValueError(f"{self.principal}: use {{agency}} exactly when for_each_agency is true")
        if not self.for_each_agency and any(g.own_referrals or g.own_gate_topics or g.own_refusals
                                            for g in self.allow):
            raise ValueError(f"{self.principal}: own_referrals, own_gate_topics and own_refusals need "
                             "for_each_agency")
        if self.agencies and not self.for_each_agency:
            raise ValueError(f"{self.principal}: agencies needs for_each_agency")
        for pattern in self.agencies:
            if pattern.removesuffix(".*") not in catalog().agencies:
                raise ValueError(f"{self.principal}: unknown agency {pattern!r}")
        return self

    def covers(self, agency: str) -> bool:
        return not self.agencies or any(agency_matches(agency, p) for p in self.agencies)


class AclPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    principals: tuple[PrincipalPlan, ...]


@dataclass(frozen=True, order=True)
class Binding:
    """One ACL: principal may `operation` on resource `name` (literal or prefix)."""

    principal: str
    resource: Literal["topic", "group"]
    name: str
    pattern: Literal["literal", "prefixed"]
    operation: Operation

    def as_dict(self) -> dict[str, str]:
        return {"principal": self.principal, "resource": self.resource, "name": self.name,
                "pattern": self.pattern, "operation": self.operation}


def load_plan(path: Path | None = None) -> AclPlan:
    return AclPlan.model_validate(yaml.safe_load((path or DEFAULT_PLAN).read_text(encoding="utf-8")))


def _resources(grant: Grant, agency: str | None) -> list[tuple[Literal["topic", "group"], str,
                                                                 Literal["literal", "prefixed"]]]:
    def sub(s: str) -> str:
        return s.replace("{agency}", agency) if agency is not None else s

    if grant.topic is not None:
        spec: TopicSpec = getattr(topics, grant.topic)
        return [("topic", spec.name, "literal")]
    if grant.own_referrals:
        assert agency is not None
        return [("topic", referral_topic_name(agency), "literal")]
    if grant.all_referrals:
        # Literal names, not the `referrals.` prefix: that prefix also matches the responses
        # topic, and the router must not be able to forge an agency's answer.
        agencies = sorted(code for code, a in catalog().agencies.items() if not a.abolished)
        return [("topic", referral_topic_name(a), "literal") for a in agencies]
    if grant.all_broadcasts:
        return [("topic", broadcast_topic(c).name, "literal") for c in BROADCAST_CHANNELS]
    if grant.own_gate_topics:
        assert agency is not None
        return [("topic", t.name, "literal") for t in gate_topics(agency)]
    if grant.all_gate_topics:
        return [("topic", t.name, "literal") for a in current_agencies() for t in gate_topics(a)]
    if grant.own_refusals:
        assert agency is not None
        return [("topic", refusals_topic_name(agency), "literal")]
    if grant.all_refusals:
        return [("topic", refusals_topic_name(a), "literal") for a in current_agencies()]
    if grant.group is not None:
        return [("group", sub(grant.group), "literal")]
    assert grant.group_prefix is not None
    return [("group", sub(grant.group_prefix), "prefixed")]


def expand(plan: AclPlan) -> list[Binding]:
    """Every binding, per current agency where templated; sorted and without repeats."""
    agencies = sorted(code for code, a in catalog().agencies.items() if not a.abolished)
    out: set[Binding] = set()
    for p in plan.principals:
        for agency in ([a for a in agencies if p.covers(a)] if p.for_each_agency else [None]):
            principal = p.principal.replace("{agency}", agency) if agency else p.principal
            for grant in p.allow:
                for resource, name, pattern in _resources(grant, agency):
                    for op in grant.ops:
                        out.add(Binding(principal, resource, name, pattern, op))
    return sorted(out)


async def apply_plan(kafka: KafkaSettings, bindings: list[Binding]) -> int:
    """Create every binding on the broker; AclUnsupported if it cannot hold ACLs."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.admin import CreateAclsRequest

    from bus.upstream.aiokafka_admin import send_request

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers,
                                request_timeout_ms=kafka.request_timeout_ms)
    await admin.start()
    try:
        created = 0
        for b in bindings:
            request = CreateAclsRequest(_RESOURCES[b.resource], b.name, _PATTERNS[b.pattern], b.principal,
                                        "*", _OPS[b.operation], _ALLOW)
            try:
                response = await send_request(admin, request)
            except KafkaError as exc:
                raise AclUnsupported(f"the broker refused CreateAcls ({type(exc).__name__}): "
                                     "it has no ACL support (the local Tansu broker has none)") from exc
            for error_code, message in response.creation_responses:
                if error_code != 0:
                    raise AclUnsupported(f"the broker refused an ACL (error {error_code}: {message})")
            created += 1
        return created
    finally:
        await admin.close()
