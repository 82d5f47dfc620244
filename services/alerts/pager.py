"""`referral-bus page`: what a command centre's (or joint office's) duty officer sees.

Every urgent alert addressed to the agency, and every re-send and escalation that reaches it,
presented once: copies a crash leaves on the topics are dropped by id (a durable SeenIds store,
so a restarted pager does not page again) and counted. Its own consumer group `pager.<agency>`;
offsets are committed only after the pages are shown.

Pages are grouped by missing-child case (`cases.changes`, kept by the alerts service, is read
beside the alert and escalation topics):

- the first alert of a case is an ALERT; a further report of the same open case (another
  `event_id`, the same `case_id`) is one GROUPED line naming the case, not a page to answer;
- a clue the alerts service linked to an open case the agency owns is one "CLUE for case X:
  <match reason>" line (ids, kind and the reason only);
- once the case is closed the pager says "case closed" once (to the owner, and wherever
  something about the case was paged) and drops every later page about it raised until the
  resolution: re-sends and escalations still in flight included;
- except an alert or duty the alerts service keeps live after the resolution (the same rule,
  `lifecycle.outlives_resolution`): a new report naming the case, raised after the police
  reported the resolution, that neither opened nor joined the case; or a duty raised after it
  (the found child's aftercare) whose lead rejected it, re-assigned to the joint office. Its
  first page here is marked "case C was resolved at T: this was raised after it"; it and its
  re-sends and escalations page as usual.

What the pager knows about each case (its alert, closed or not, paged here or not, when it was
resolved, its reports, the alerts live after the resolution) is kept in a small SQLite table
beside the seen ids, so a restarted pager keeps grouping, dropping and paging the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from bus.dedup import SeenIds, open_store
from bus.delivery_metrics import DeliveryMetrics
from bus.kafka.clients import consumer
from bus.settings import KafkaSettings, StateSettings
from schemas.alerts import CaseChange, Escalation, LinkedClue, PoliceAlert
from services.alerts.lifecycle import outlives_resolution
from topics.catalog import CASES, ESCALATIONS, POLICE_ALERTS

PageKind = Literal["alert", "resend", "escalation", "grouped", "clue", "case_closed", "case"]


@dataclass(frozen=True)
class Page:
    """One thing to tell the duty officer, with the id it is shown under once.

    `kind` "case" is bookkeeping only (which alert is the case's), never shown; `addressed` is
    False for what concerns the agency only if it has paged something about the case.
    """

    page_id: str
    text: str
    json: str
    kind: PageKind = "alert"
    case_id: str | None = None
    alert_id: str | None = None
    addressed: bool = True
    needs_ack: bool = True
    alert: PoliceAlert | None = field(default=None, compare=False, repr=False)
    case: CaseChange | None = field(default=None, compare=False, repr=False)
    #: The event the paged alert or duty came from and when it was raised, if known.
    origin: tuple[uuid.UUID, dt.datetime] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class CaseNote:
    """What the pager remembers about one case."""

    alert_id: str | None = None  # the case's alert: the one that opened it, else the first paged
    closed: bool = False
    paged: bool = False  # something about the case was shown by this pager
    resolved_at: dt.datetime | None = None  # when the police reported the resolution (CaseChange.resolved_at)
    reports: frozenset[uuid.UUID] = frozenset()  # the reports that opened or joined the case
    live: frozenset[str] = frozenset()  # alerts raised after the resolution, paged here: they stay live


def _drill(exercise: bool) -> str:
    return " [EXERCISE]" if exercise else ""


def _alert_page(alert: PoliceAlert) -> Page:
    kind = "ALERT" if alert.attempt == 1 else f"RE-SENT ALERT (attempt {alert.attempt})"
    deadline = alert.ack_deadline.isoformat(timespec="seconds") if alert.ack_deadline else "-"
    return Page(alert.delivery_id,
                f"[bold red]{kind}[/]{_drill(alert.exercise)} {escape(alert.jurisdiction)}: {escape(alert.action)} "
                f"· ack by {deadline} · alert {alert.alert_id} case {alert.case_id}",
                alert.model_dump_json(), kind="alert" if alert.attempt == 1 else "resend",
                case_id=str(alert.case_id), alert_id=str(alert.alert_id), alert=alert,
                origin=(alert.event_id, alert.raised_at))


def _escalation_page(esc: Escalation) -> Page:
    case = f" case {esc.case_id}" if esc.case_id else ""
    return Page(str(esc.escalation_id),
                f"[bold yellow]{escape(esc.action.upper())}[/]{_drill(esc.exercise)} level {esc.level} "
                f"{escape(esc.target_jurisdiction)}: {escape(esc.reason)} · about {esc.referral_id}{case}",
                esc.model_dump_json(), kind="escalation", case_id=str(esc.case_id) if esc.case_id else None,
                alert_id=str(esc.referral_id), alert=esc.alert, origin=_origin(esc))


def _origin(esc: Escalation) -> tuple[uuid.UUID, dt.datetime] | None:
    if esc.event_id is not None and esc.raised_at is not None:
        return esc.event_id, esc.raised_at
    if esc.alert is not None:  # escalations written before they carried their origin
        return esc.alert.event_id, esc.alert.raised_at
    return None


def grouped_page(alert: PoliceAlert, case_alert_id: str) -> Page:
    """A further report of an open case: one line under the case, nothing to answer. The same
    line (and id) for every attempt of that report's alert."""
    body = {"page": "grouped", "case_id": str(alert.case_id), "alert_id": str(alert.alert_id),
            "event_id": str(alert.event_id), "jurisdiction": alert.jurisdiction, "case_alert_id": case_alert_id,
            "exercise": alert.exercise}
    return Page(f"{alert.alert_id}#grouped",
                f"[cyan]GROUPED[/]{_drill(alert.exercise)} under case {alert.case_id}: further report "
                f"{alert.event_id} ({escape(alert.jurisdiction)}) · the case's alert {case_alert_id} stands, "
                "no new page",
                json.dumps(body, ensure_ascii=False), kind="grouped", case_id=str(alert.case_id),
                alert_id=str(alert.alert_id), needs_ack=False)


def _clue_page(case: CaseChange, clue: LinkedClue) -> Page:
    # Ids, kind, jurisdiction and the match reason only: the case's descriptors stay out.
    body = {"page": "clue", "case_id": str(case.case_id), "event_id": str(clue.event_id), "kind": clue.kind,
            "jurisdiction": clue.jurisdiction, "reason": clue.reason,
            "linked_at": clue.linked_at.isoformat(), "exercise": case.exercise}
    return Page(f"clue|{case.case_id}|{clue.event_id}",
                f"[bold magenta]CLUE for case {case.case_id}[/]{_drill(case.exercise)}: {escape(clue.reason)} "
                f"· {escape(clue.kind)} in {escape(clue.jurisdiction)}, event {clue.event_id}",
                json.dumps(body, ensure_ascii=False), kind="clue", case_id=str(case.case_id),
                alert_id=str(case.alert_id), needs_ack=False)


def _closed_page(case: CaseChange, addressed: bool) -> Page:
    body = {"page": "case_closed", "case_id": str(case.case_id), "jurisdiction": case.jurisdiction,
            "outcome": case.outcome, "closed_at": case.changed_at.isoformat(), "exercise": case.exercise}
    return Page(f"case|{case.case_id}|closed",
                f"[bold green]CASE CLOSED[/]{_drill(case.exercise)} case {case.case_id} "
                f"({escape(case.jurisdiction)}): {escape(case.outcome or 'resolved')} · no more pages about it "
                "(a new report after the resolution still pages)",
                json.dumps(body, ensure_ascii=False), kind="case_closed", case_id=str(case.case_id),
                alert_id=str(case.alert_id), addressed=addressed, needs_ack=False, case=case)


def after_resolution_page(page: Page, resolved_at: dt.datetime) -> Page:
    """The first page of an alert or duty raised after its case was resolved: marked (ids and times only)."""
    at = resolved_at.isoformat(timespec="seconds")
    body = json.loads(page.json)
    body["after_resolution"] = {"case_id": page.case_id, "resolved_at": resolved_at.isoformat()}
    return replace(page, text=f"{page.text} · [bold]case {page.case_id} was resolved at {at}: this was raised "
                              "after it[/]",
                   json=json.dumps(body, ensure_ascii=False))


def pages_in(record: ConsumerRecord[bytes, bytes], agency: str, jurisdiction: str | None) -> Iterator[Page]:
    """The candidate pages a record holds for `agency` (none if it is addressed elsewhere or
    unreadable), before `decide` groups them by case."""
    try:
        if record.topic == POLICE_ALERTS.name:
            alert = PoliceAlert.model_validate_json(record.value or b"")
            if alert.agency == agency and jurisdiction in (None, alert.jurisdiction):
                yield _alert_page(alert)
        elif record.topic == ESCALATIONS.name:
            esc = Escalation.model_validate_json(record.value or b"")
            if esc.target_agency == agency and jurisdiction in (None, esc.target_jurisdiction):
                yield _escalation_page(esc)
        elif record.topic == CASES.name:
            case = CaseChange.model_validate_json(record.value or b"")
            owned = case.owner == agency and jurisdiction in (None, case.jurisdiction)
            # Every case is noted (its alert; closed), so that escalations about it to other
            # levels are grouped and dropped too; only the owner is told of its clues.
            yield Page(f"case|{case.case_id}", "", "", kind="case", case_id=str(case.case_id),
                       alert_id=str(case.alert_id), addressed=False, needs_ack=False, case=case)
            if case.status == "closed":
                yield _closed_page(case, owned)
            elif owned:
                for clue in case.clues:
                    yield _clue_page(case, clue)
    except ValidationError:
        return  # the producing service validated it; a foreign message is not a page


def decide(page: Page, note: CaseNote | None) -> tuple[Page | None, CaseNote | None]:
    """Pure: what to show for a candidate page given what is known about its case, and what to
    remember about the case afterwards (None: a page about no case)."""
    if page.case_id is None:
        return page, None
    note = _with_case(note or CaseNote(), page.case)
    if page.kind == "case":
        return None, note if note.alert_id else replace(note, alert_id=page.alert_id)
    if page.kind == "case_closed":
        show = not note.closed and (page.addressed or note.paged)
        return (page if show else None), replace(note, closed=True, paged=note.paged or show)
    if note.closed:
        # The child is found: every later page about the case is dropped, but for an alert or a
        # duty the alerts service keeps live, raised after the resolution (a new report naming the
        # case; the found child's aftercare, re-assigned when its lead rejected it).
        if page.kind not in ("alert", "resend", "escalation") or page.alert_id is None:
            return None, note
        if page.alert_id in note.live:
            return page, note
        if (page.origin is None or note.resolved_at is None
                or not outlives_resolution(*page.origin, note.reports, note.resolved_at)):
            return None, note
        return (after_resolution_page(page, note.resolved_at),
                replace(note, live=note.live | {page.alert_id}, paged=True))
    if page.kind in ("alert", "resend"):
        if note.alert_id is not None and note.alert_id != page.alert_id and page.alert is not None:
            return grouped_page(page.alert, note.alert_id), replace(note, paged=True)
        return page, replace(note, alert_id=note.alert_id or page.alert_id, paged=True)
    return page, replace(note, paged=True)


def _with_case(note: CaseNote, case: CaseChange | None) -> CaseNote:
    """The note with what a case change says: its reports, and when it was resolved."""
    if case is None:
        return note
    reports = note.reports | {case.event_id, *case.grouped_reports}
    resolved_at = case.resolved_at or note.resolved_at
    if reports == note.reports and resolved_at == note.resolved_at:
        return note
    return replace(note, reports=reports, resolved_at=resolved_at)


class CaseNotes:
    """The pager's durable memory of cases (SQLite; None: in memory), with how far it has read
    `cases.changes` (its own offsets: that topic is read without a consumer group)."""

    def __init__(self, path: Path | None) -> None:
        self._db = open_store(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS cases (case_id TEXT PRIMARY KEY, alert_id TEXT, "
                         "closed INTEGER NOT NULL DEFAULT 0, paged INTEGER NOT NULL DEFAULT 0)")
        # Added since: a store written before them reads as not resolved, no reports, none live.
        have = {row[1] for row in self._db.execute("PRAGMA table_info(cases)")}
        for column in ("resolved_at TEXT", "reports TEXT NOT NULL DEFAULT '[]'", "live TEXT NOT NULL DEFAULT '[]'"):
            if column.split()[0] not in have:
                self._db.execute(f"ALTER TABLE cases ADD COLUMN {column}")
        self._db.execute("CREATE TABLE IF NOT EXISTS offsets (partition INTEGER PRIMARY KEY, "
                         "next_offset INTEGER NOT NULL)")

    def get(self, case_id: str) -> CaseNote | None:
        row = self._db.execute("SELECT alert_id, closed, paged, resolved_at, reports, live FROM cases "
                               "WHERE case_id = ?", (case_id,)).fetchone()
        if row is None:
            return None
        return CaseNote(row[0], bool(row[1]), bool(row[2]),
                        dt.datetime.fromisoformat(row[3]) if row[3] else None,
                        frozenset(uuid.UUID(r) for r in json.loads(row[4])), frozenset(json.loads(row[5])))

    def put(self, case_id: str, note: CaseNote) -> None:
        self._db.execute("INSERT OR REPLACE INTO cases (case_id, alert_id, closed, paged, resolved_at, reports, live) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (case_id, note.alert_id, int(note.closed), int(note.paged),
                          note.resolved_at.isoformat() if note.resolved_at else None,
                          json.dumps(sorted(str(r) for r in note.reports)), json.dumps(sorted(note.live))))

    def offsets(self) -> dict[int, int]:
        return dict(self._db.execute("SELECT partition, next_offset FROM offsets").fetchall())

    def advance(self, partition: int, next_offset: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO offsets (partition, next_offset) VALUES (?, ?)",
                         (partition, next_offset))

    def close(self) -> None:
        self._db.close()


@dataclass
class Pager:
    """The pager's decisions over its two durable stores: `handle` a record, get what to show
    now. Pages are marked seen and case notes written as they are decided (as the pager always
    did: the caller shows them straight away and commits offsets after), so a record read again
    after a crash or a restart shows nothing twice, and a closed case stays closed."""

    agency: str
    jurisdiction: str | None
    seen: SeenIds
    notes: CaseNotes
    duplicates: int = 0

    def handle(self, record: ConsumerRecord[bytes, bytes]) -> list[Page]:
        shown = []
        for candidate in pages_in(record, self.agency, self.jurisdiction):
            before = self.notes.get(candidate.case_id) if candidate.case_id else None
            page, after = decide(candidate, before)
            if page is not None:
                if self.seen.first_time(page.page_id):
                    shown.append(page)
                else:
                    self.duplicates += 1
            if candidate.case_id and after is not None and after != before:
                self.notes.put(candidate.case_id, after)
        return shown

    def close(self) -> None:
        self.seen.close()
        self.notes.close()


class CaseFeed:
    """`cases.changes`, read to its end before the alerts and escalations of a fetch are decided.

    Topics are not ordered against each other: without this, a re-send produced after the case
    was closed could be read before the closing change and page again. The topic's end offsets
    are a floor on the local broker (it can report the start of the last batch), so the feed
    reads one more fetch once it has reached them."""

    def __init__(self, settings: KafkaSettings, pager: Pager) -> None:
        self.pager = pager
        self.reader = consumer(settings, group_id=None)
        self.parts: list[TopicPartition] = []

    async def start(self) -> None:
        await self.reader.start()
        await self.reader.topics()  # metadata, so partitions_for_topic knows the topic
        self.parts = [TopicPartition(CASES.name, p) for p in sorted(self.reader.partitions_for_topic(CASES.name) or ())]
        self.reader.assign(self.parts)
        done = self.pager.notes.offsets()
        for tp in self.parts:
            if tp.partition in done:
                self.reader.seek(tp, done[tp.partition])
            else:
                await self.reader.seek_to_beginning(tp)

    async def catch_up(self) -> tuple[list[Page], int]:
        """The pages of every case change up to now, and how many changes were read."""
        if not self.parts:
            return [], 0
        ends = await self.reader.end_offsets(self.parts)
        pages: list[Page] = []
        read = 0
        reached = False
        while True:
            batches = await self.reader.getmany(*self.parts, timeout_ms=20, max_records=500)
            for tp, records in batches.items():
                for record in records:
                    pages.extend(self.pager.handle(record))
                read += len(records)
                if records:
                    self.pager.notes.advance(tp.partition, records[-1].offset + 1)
            if reached:
                return pages, read
            reached = all([await self.reader.position(tp) >= ends[tp] for tp in self.parts])

    async def stop(self) -> None:
        await self.reader.stop()


async def page_agency(settings: KafkaSettings, state: StateSettings, agency: str, *,
                      jurisdiction: str | None, follow: bool, idle_exit: float, as_json: bool,
                      console: Console, registry: CollectorRegistry | None = None) -> int:
    """Show each page for `agency` once; returns how many pages to answer were shown (grouped
    reports, clues and closures are shown but not counted)."""
    group = f"pager.{agency}"
    metrics = DeliveryMetrics(registry if registry is not None else CollectorRegistry())
    pager = Pager(agency, jurisdiction, SeenIds(state.state_dir / "dedup" / f"{group}.sqlite"),
                  CaseNotes(state.state_dir / "dedup" / f"{group}.cases.sqlite"))
    feed = CaseFeed(settings, pager)
    reader = consumer(settings, POLICE_ALERTS.name, ESCALATIONS.name, group_id=group)
    shown = 0

    def show(pages: list[Page]) -> None:
        nonlocal shown
        for page in pages:
            if as_json:
                console.file.write(page.json + "\n")
                console.file.flush()
            else:
                console.print(page.text, soft_wrap=True)
            shown += page.needs_ack

    await feed.start()
    await reader.start()
    try:
        last_record = time.monotonic()
        while follow or time.monotonic() - last_record < idle_exit:
            dropped = pager.duplicates
            batches = await reader.getmany(timeout_ms=200, max_records=500)
            # Every case change written before these alerts were fetched is known before they
            # are decided: a case closed by then pages nothing more.
            case_pages, changes = await feed.catch_up()
            show(case_pages)
            if changes:
                last_record = time.monotonic()
            for records in batches.values():
                last_record = time.monotonic()
                for record in records:
                    show(pager.handle(record))
            if pager.duplicates > dropped:
                metrics.duplicates_dropped.labels(group).inc(pager.duplicates - dropped)
            if batches:
                await reader.commit()  # after showing: a crash re-reads, the stores drop the copies
    finally:
        await reader.stop()
        await feed.stop()
        pager.close()
    return shown
