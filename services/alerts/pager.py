"""`referral-bus page`: what a command centre's (or joint office's) duty officer sees.

Every urgent alert addressed to the agency, and every re-send and escalation that reaches it,
presented once: copies a crash leaves on the topics are dropped by id (a durable SeenIds store,
so a restarted pager does not page again) and counted. Its own consumer group `pager.<agency>`;
offsets are committed only after the pages are shown.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from referral_bus.dedup import SeenIds
from referral_bus.kafka.clients import consumer
from referral_bus.schemas.alerts import Escalation, PoliceAlert
from referral_bus.services.delivery.metrics import DeliveryMetrics
from referral_bus.settings import KafkaSettings, StateSettings
from referral_bus.topics.catalog import ESCALATIONS, POLICE_ALERTS


@dataclass(frozen=True)
class Page:
    """One thing to tell the duty officer, with the id it is shown under once."""

    page_id: str
    text: str
    json: str


def pages_in(record: ConsumerRecord[bytes, bytes], agency: str, jurisdiction: str | None) -> Iterator[Page]:
    """The pages a record holds for `agency` (none if it is addressed elsewhere or unreadable)."""
    try:
        if record.topic == POLICE_ALERTS.name:
            alert = PoliceAlert.model_validate_json(record.value or b"")
            if alert.agency == agency and jurisdiction in (None, alert.jurisdiction):
                drill = " [EXERCISE]" if alert.exercise else ""
                kind = "ALERT" if alert.attempt == 1 else f"RE-SENT ALERT (attempt {alert.attempt})"
                deadline = alert.ack_deadline.isoformat(timespec="seconds") if alert.ack_deadline else "-"
                yield Page(alert.delivery_id,
                           f"[bold red]{kind}[/]{drill} {escape(alert.jurisdiction)}: {escape(alert.action)} "
                           f"· ack by {deadline} · alert {alert.alert_id} case {alert.case_id}",
                           alert.model_dump_json())
        elif record.topic == ESCALATIONS.name:
            esc = Escalation.model_validate_json(record.value or b"")
            if esc.target_agency == agency and jurisdiction in (None, esc.target_jurisdiction):
                drill = " [EXERCISE]" if esc.exercise else ""
                yield Page(str(esc.escalation_id),
                           f"[bold yellow]{escape(esc.action.upper())}[/]{drill} level {esc.level} "
                           f"{escape(esc.target_jurisdiction)}: {escape(esc.reason)} · about {esc.referral_id}",
                           esc.model_dump_json())
    except ValidationError:
        return  # the producing service validated it; a foreign message is not a page


async def page_agency(settings: KafkaSettings, state: StateSettings, agency: str, *,
                      jurisdiction: str | None, follow: bool, idle_exit: float, as_json: bool,
                      console: Console, registry: CollectorRegistry | None = None) -> int:
    """Show each page for `agency` once; returns how many were shown."""
    group = f"pager.{agency}"
    metrics = DeliveryMetrics(registry if registry is not None else CollectorRegistry())
    seen = SeenIds(state.state_dir / "dedup" / f"{group}.sqlite")
    reader = consumer(settings, POLICE_ALERTS.name, ESCALATIONS.name, group_id=group)
    shown = 0
    await reader.start()
    try:
        last_record = time.monotonic()
        while follow or time.monotonic() - last_record < idle_exit:
            batches = await reader.getmany(timeout_ms=200, max_records=500)
            for records in batches.values():
                last_record = time.monotonic()
                for record in records:
                    for page in pages_in(record, agency, jurisdiction):
                        if not seen.first_time(page.page_id):
                            metrics.duplicates_dropped.labels(group).inc()
                            continue
                        if as_json:
                            console.file.write(page.json + "\n")
                            console.file.flush()
                        else:
                            console.print(page.text, soft_wrap=True)
                        shown += 1
            if batches:
                await reader.commit()  # after showing: a crash re-reads, the store drops the copies
    finally:
        await reader.stop()
        seen.close()
    return shown
