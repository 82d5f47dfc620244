"""The duty desk: read the alerts service's decisions, tell the desk each thing once, and ride out a
broker outage.

For one agency (maybe one jurisdiction), from `alerts.states` and `cases.changes` (`feed.py`):
urgent alerts addressed to it, their re-sends and escalations, re-assignments to it, further
reports grouped under an open case, clues linked to a case it owns, and the closing of a case
(`bus/desk.py` decides which; `render.py` writes them). Each is shown once: copies, re-reads after
a restart and changes of a state that tell nothing new are dropped by id and counted.

When the broker stops answering, the desk says so in one line, keeps trying to reconnect, says
so again in one line when it is back, and goes on from where it had read: nothing is lost, nothing
is shown twice, and the client library's own error logs are kept quiet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from rich.console import Console

from bus.boundary import fault
from bus.dedup import SeenIds
from bus.delivery_metrics import DeliveryMetrics
from bus.desk import CaseMemory, Desk, Notice, decide, notices_of_case, notices_of_state
from bus.settings import KafkaSettings, StateSettings
from schemas.alerts import CaseChange
from services.alerts.pager import render
from services.alerts.pager.feed import BrokerUnreachable, Decision, DecisionFeed, decision
from services.alerts.pager.memory import DeskMemory, claim_desk, open_memory

#: How long the desk waits for the broker to answer before it calls the broker unreachable.
BROKER_TIMEOUT_S = 5.0
#: Between two attempts to reconnect, at most.
RECONNECT_MAX_S = 10.0


@dataclass
class Pager:
    """A desk's decisions over its memory: `handle` a decision, get the notices to show now.

    Notices are marked seen and case memories written as they are decided (the caller shows them
    straight away and advances its positions after), so a decision read again after a crash or a
    restart shows nothing twice, and a closed case stays closed."""

    desk: Desk
    seen: SeenIds
    memory: DeskMemory
    duplicates: int = 0

    def handle(self, item: Decision) -> list[Notice]:
        notices = notices_of_case(item, self.desk) if isinstance(item, CaseChange) else notices_of_state(item,
                                                                                                       self.desk)
        shown = []
        for notice in notices:
            key = str(notice.case_id) if notice.case_id is not None else None
            before = self.memory.case(key) if key else None
            page, after = decide(notice, before)
            if page is not None:
                if self.seen.first_time(page.notice_id):
                    shown.append(page)
                else:
                    self.duplicates += 1
            if key and after is not None and after != (before or CaseMemory()):
                self.memory.put_case(key, after)
        return shown

    def close(self) -> None:
        self.seen.close()
        self.memory.close()


class Outage:
    """Tells the desk, once each, that the broker went away and that it is back."""

    def __init__(self, kafka: KafkaSettings, say: Callable[[str], None]) -> None:
        self.kafka, self.say = kafka, say
        self.since: float | None = None

    def lost(self, reason: str) -> None:
        if self.since is None:
            self.since = time.monotonic()
            at = dt.datetime.now().astimezone().isoformat(timespec="seconds")
            self.say(f"broker {self.kafka.bootstrap_servers} unreachable since {at} ({reason}): reconnecting; "
                     "pages resume when it is back")

    def back(self) -> None:
        if self.since is not None:
            self.say(f"broker reachable again after {time.monotonic() - self.since:.0f} s: paging resumed")
            self.since = None


async def page_agency(settings: KafkaSettings, state: StateSettings, agency: str, *,
                      jurisdiction: str | None, follow: bool, idle_exit: float, as_json: bool,
                      console: Console, desk_name: str | None = None, registry: CollectorRegistry | None = None,
                      err_console: Console | None = None, broker_timeout: float = BROKER_TIMEOUT_S) -> int:
    """Show each notice for one desk of `agency` once; returns how many pages to answer were shown
    (grouped reports, clues and closures are shown but not counted)."""
    errors = err_console or Console(stderr=True)
    # The outage line replaces aiokafka's own error log, which repeats every retry while the broker is away.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    files = claim_desk(state.state_dir, agency, desk_name)
    if files.name != "1":
        errors.print(f"desk {files.name} of {agency}: another pager holds desk 1 in this state directory")
    seen, memory = open_memory(files)
    pager = Pager(Desk(agency, jurisdiction), seen, memory)
    metrics = DeliveryMetrics(registry if registry is not None else CollectorRegistry())
    consumer = f"pager.{agency}"
    feed = DecisionFeed(settings, memory, timeout=broker_timeout)
    outage = Outage(settings, lambda line: errors.print(line, soft_wrap=True))
    shown = 0

    def show(notices: list[Notice]) -> None:
        nonlocal shown
        for notice in notices:
            if as_json:
                console.file.write(render.as_json(notice, agency) + "\n")
                console.file.flush()
            else:
                console.print(render.text(notice), soft_wrap=True)
            shown += notice.needs_answer

    async def cycle() -> bool:
        """One fetch of states, decided after every case change up to now; True if anything was read."""
        dropped = pager.duplicates
        states = await feed.states(wait_ms=200)
        cases = await feed.cases_to_end()
        for record in (*cases, *states):
            item = decision(record)
            if item is None:
                if record.value is not None:
                    metrics.refused.labels("not_a_decision").inc()
            else:
                try:
                    show(pager.handle(item))
                except Exception as exc:  # the last resort: one record a bug cannot show, not the desk
                    fault("pager", exc, topic=record.topic, partition=record.partition, offset=record.offset)
                    metrics.refused.labels("internal_error").inc()
            feed.handled(record)
        if pager.duplicates > dropped:
            metrics.duplicates_dropped.labels(consumer).inc(pager.duplicates - dropped)
        return bool(states or cases)

    try:
        backoff = 0.5
        connected = False
        last_read = time.monotonic()
        while follow or time.monotonic() - last_read < idle_exit:
            try:
                if not connected:
                    await feed.connect()
                    connected, backoff = True, 0.5
                    outage.back()
                if await cycle():
                    last_read = time.monotonic()
            except BrokerUnreachable as exc:
                outage.lost(str(exc))
                await feed.disconnect()
                connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)
    finally:
        await feed.disconnect()
        pager.close()
        files.release()
    return shown
