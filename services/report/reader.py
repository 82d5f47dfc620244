"""Reads the topics the report needs, once, from the beginning, with a progress bar.

Caught up is decided by `records_to_end` (end offsets as a floor AND an empty fetch): the local
Tansu broker under-reports end offsets, so they are only the progress bar's estimate of the total.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bus.boundary import CASE_CHANGE, ESCALATION, POLICE_ALERT, REFERRAL, TRACKED_STATE, Contract, Refusal
from bus.kafka.clients import consumer
from bus.kafka.reader import assign_from_start, records_to_end
from bus.settings import KafkaSettings
from rules.catalog import catalog
from schemas.alerts import CaseChange, Escalation, PoliceAlert, TrackedState
from schemas.referrals import Referral
from topics.catalog import ALERT_STATES, CASES, ESCALATIONS, POLICE_ALERTS, referral_topic_name


@dataclass
class TopicData:
    """Every decoded message of the report's topics; `undecodable` counts the rest per topic."""

    referrals: list[Referral] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    alerts: list[PoliceAlert] = field(default_factory=list)
    states: list[TrackedState] = field(default_factory=list)
    cases: list[CaseChange] = field(default_factory=list)
    undecodable: dict[str, int] = field(default_factory=dict)
    records: int = 0


def referral_topics() -> list[str]:
    """One topic per agency of the catalog, abolished ones included (they may hold old referrals)."""
    return sorted(referral_topic_name(code) for code in catalog().agencies)


async def read_topics(settings: KafkaSettings, console: Console | None = None) -> TopicData:
    data = TopicData()
    # Each topic's records through the trust boundary: the report counts only what decodes.
    sinks: dict[str, tuple[Contract[Any], Callable[[Any], None]]] = {
        ESCALATIONS.name: (ESCALATION, data.escalations.append),
        POLICE_ALERTS.name: (POLICE_ALERT, data.alerts.append),
        ALERT_STATES.name: (TRACKED_STATE, data.states.append),
        CASES.name: (CASE_CHANGE, data.cases.append),
    }
    for name in referral_topics():
        sinks[name] = (REFERRAL, data.referrals.append)

    c = consumer(settings, group_id=None)
    await c.start()
    try:
        parts = await assign_from_start(c, sinks)
        if not parts:
            return data
        estimate = sum((await c.end_offsets(parts)).values())
        with Progress(TextColumn("reading topics"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console or Console(stderr=True), transient=False) as progress:
            task = progress.add_task("read", total=max(estimate, 1))
            async for record in records_to_end(c, parts):
                data.records += 1
                contract, sink = sinks[record.topic]
                if record.value is not None:  # a tombstone on a compacted topic
                    value = contract.decode(record.value)
                    if isinstance(value, Refusal):
                        data.undecodable[record.topic] = data.undecodable.get(record.topic, 0) + 1
                    else:
                        sink(value)
                # The estimate is low on the local broker: let the total grow with what is read.
                progress.update(task, completed=data.records, total=max(estimate, data.records))
            progress.update(task, total=data.records, completed=data.records)
        return data
    finally:
        await c.stop()
