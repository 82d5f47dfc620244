"""`referral-bus tail`: print one agency's referrals as they arrive.

Its own consumer group `agency.<code>`, so it sees every referral of the agency whatever other
readers do; copies dropped by id (SeenIds under the state directory) and counted.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.markup import escape

from bus.agency_reader import AgencyReader, AuditSink
from bus.kafka.publisher import KafkaPublisher
from bus.settings import KafkaSettings, StateSettings
from schemas.referrals import Referral
from services.delivery.metrics import TailMetrics


def group_for(agency: str) -> str:
    """The tail's consumer group: one per agency."""
    return f"agency.{agency}"


def render(referral: Referral) -> str:
    """One line for people: what to do, by when, why (codes and the clause; no personal fields)."""
    due = referral.due_by.isoformat(timespec="minutes") if referral.due_by else "-"
    drill = " [EXERCISE]" if referral.exercise else ""
    return (f"[bold]{escape(referral.urgency)}[/]{drill} {escape(referral.kind)} "
            f"→ {escape(referral.agency)} ({referral.role}): {escape(referral.action)} "
            f"due {due} · {escape(referral.rule_id)} {escape(referral.citation.clause)} "
            f"· event {referral.event_id} referral {referral.referral_id}")


async def tail_agency(settings: KafkaSettings, state: StateSettings, agency: str, *, follow: bool,
                      idle_exit: float, as_json: bool, console: Console,
                      registry: CollectorRegistry | None = None, audit: bool = True) -> int:
    """Print each new referral for `agency`; returns how many were printed."""
    metrics = TailMetrics(registry if registry is not None else CollectorRegistry())
    publisher = KafkaPublisher(settings, timeout_s=5.0) if audit else None
    printed = 0
    try:
        async with AgencyReader(settings, state.state_dir, agency, group=group_for(agency),
                                metrics=metrics,
                                audit=AuditSink(publisher) if publisher else None) as reader:
            async for item in reader.referrals(follow=follow, idle_exit=idle_exit):
                if as_json:
                    # Plain stdout write: rich would wrap long JSON lines.
                    console.file.write(item.referral.model_dump_json() + "\n")
                    console.file.flush()
                else:
                    console.print(render(item.referral), soft_wrap=True)
                printed += 1
    finally:
        if publisher is not None:
            await publisher.close()
    return printed
