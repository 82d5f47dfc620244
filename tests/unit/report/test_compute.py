"""The annual report's figures from decoded messages, without a broker."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from pathlib import Path

import pytest

from schemas.alerts import (
    Escalation,
    HistoryEntry,
    PoliceAlert,
    TrackedState,
    alert_id_for,
    escalation_id_for,
)
from schemas.referrals import Citation, Referral
from services.report.compute import AppliedAnswer, applied_answers, compute
from services.report.render import to_csv, to_markdown, write_all

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=CST)
CITE = Citation(file="x.txt", clause="第五条", quote="q")


def referral(agency: str, kind: str = "abandoned_infant_found", *, at: dt.datetime = T0, ack_minutes: int | None = 60,
             jurisdiction: str = "xian", exercise: bool = False, role: str = "lead") -> Referral:
    event_id = uuid.uuid4()
    return Referral(
        referral_id=uuid.uuid5(event_id, agency), event_id=event_id, kind=kind, jurisdiction=jurisdiction,
        decided_by=jurisdiction, agency=agency, role=role, action="act", urgency="u", reported_at=at,
        ack_by=at + dt.timedelta(minutes=ack_minutes) if ack_minutes is not None else None, due_by=None,
        rule_id="r", citation=CITE, exercise=exercise)


def answer(r: Referral | uuid.UUID, minutes: float, what: str = "acknowledged", *,
           exercise: bool = False) -> AppliedAnswer:
    """An answer the alerts service applied, received by the bus `minutes` after T0."""
    rid = r if isinstance(r, uuid.UUID) else r.referral_id
    return AppliedAnswer(referral_id=rid, response_id=str(uuid.uuid4()), answer=what,
                         at=T0 + dt.timedelta(minutes=minutes), exercise=exercise)


def escalation(r: Referral | uuid.UUID, step: int, exercise: bool = False) -> Escalation:
    rid = r if isinstance(r, uuid.UUID) else r.referral_id
    return Escalation(escalation_id=escalation_id_for(rid, step), referral_id=rid, case_id=None, action="resend",
                      step=step, level=0, target_agency="police", target_jurisdiction="xian", reason="no ack",
                      decided_at=T0, ack_deadline=None, exercise=exercise)


def test_acks_on_time_late_missing_and_median() -> None:
    a, b, c, d = (referral("civil_affairs") for _ in range(4))
    responses = [answer(a, 10), answer(a, 20, "done"), answer(b, 90), answer(d, 30, "accepted")]
    report = compute([a, b, c, d], responses, [], "xian", 2026)
    row = report.row("civil_affairs")
    assert (row.received, row.acknowledged_on_time, row.acknowledged_late, row.not_acknowledged) == (4, 2, 1, 1)
    assert row.median_ack_minutes == 30  # first answers: 10, 90, 30
    assert row.open == 4  # the alerts service has no state of them: open
    assert row.by_kind == {"abandoned_infant_found": 4}


def test_scope_jurisdiction_and_year_in_china_time() -> None:
    new_year_cst = dt.datetime(2026, 12, 31, 16, 30, tzinfo=dt.UTC)  # 2027-01-01 00:30 in 西安
    rs = [referral("police"), referral("police", jurisdiction="xx_city"), referral("police", at=new_year_cst),
          referral("police", at=dt.datetime(2025, 12, 31, 16, 30, tzinfo=dt.UTC))]  # 2026-01-01 00:30 CST
    report = compute(rs, [], [], "xian", 2026)
    assert report.row("police").received == 2
    assert report.out_of_scope == 2


def test_drills_are_counted_apart_and_copies_dropped_by_id() -> None:
    real, drill = referral("education"), referral("education", exercise=True)
    report = compute([real, real, real, drill, drill], [answer(real, 5), answer(drill, 5, exercise=True)], [],
                     "xian", 2026)
    row = report.row("education")
    assert (row.received, row.drills, row.acknowledged_on_time) == (1, 1, 1)
    assert (report.referrals, report.drills, report.duplicates_dropped) == (1, 1, 3)


def test_answer_copies_and_escalation_copies_are_counted_once() -> None:
    r = referral("police", ack_minutes=5)
    late = answer(r, 50)
    esc = escalation(r, 1)
    report = compute([r], [late, late], [esc, esc, escalation(r, 2), escalation(r, 3, exercise=True)], "xian", 2026)
    row = report.row("police")
    assert (row.acknowledged_late, row.escalations) == (1, 2)


def test_no_ack_deadline_is_its_own_column() -> None:
    r = referral("health", ack_minutes=None)
    row = compute([r], [answer(r, 5)], [], "xian", 2026).row("health")
    assert (row.no_deadline, row.acknowledged_on_time, row.not_acknowledged) == (1, 0, 0)
    assert row.on_time_rate is None


def test_an_answer_to_the_alert_answers_its_lead_referral() -> None:
    lead = referral("police.command_center", "child_missing_reported", ack_minutes=5)
    alert = PoliceAlert(alert_id=alert_id_for(lead.event_id), case_id=lead.event_id, event_id=lead.event_id,
                        jurisdiction="xian", agency="police.command_center", urgency="immediate", action="a",
                        raised_at=T0, ack_deadline=lead.ack_by, lead_referral_id=lead.referral_id)
    report = compute([lead], [answer(alert.alert_id, 3)], [escalation(alert.alert_id, 1)], "xian", 2026,
                     alerts=[alert])
    row = report.row("police.command_center")
    assert (row.acknowledged_on_time, row.escalations) == (1, 1)


def test_open_from_tracked_states_when_the_alerts_service_has_any() -> None:
    a, b = referral("police"), referral("police")

    def state(r: Referral, status: str) -> TrackedState:
        return TrackedState(id=r.referral_id, kind="referral", event_id=r.event_id, event_kind=r.kind, case_id=None,
                            jurisdiction="xian", agency="police", role="lead", urgency="u", raised_at=T0,
                            ack_deadline=r.ack_by, status=status, target_agency="police",
                            target_jurisdiction="xian")

    report = compute([a, b], [], [], "xian", 2026, states=[state(a, "sent"), state(a, "done"), state(b, "accepted")])
    assert report.row("police").open == 1


def test_only_answers_the_alerts_service_applied_count_at_the_time_the_bus_received_them() -> None:
    """Issue #17: an answer backdated by its sender, or refused by the alerts service, is not on time."""
    on_time, backdated, refused = (referral("civil_affairs", ack_minutes=30) for _ in range(3))

    def state(r: Referral, *history: HistoryEntry) -> TrackedState:
        return TrackedState(id=r.referral_id, kind="referral", event_id=r.event_id, event_kind=r.kind, case_id=None,
                            jurisdiction="xian", agency=r.agency, role="lead", urgency="u", raised_at=T0,
                            ack_deadline=r.ack_by, status="acknowledged" if history else "sent",
                            target_agency=r.agency, target_jurisdiction="xian", history=history)

    def entry(what: str, minutes: float, claimed_minutes: float | None = None) -> HistoryEntry:
        claimed = None if claimed_minutes is None else T0 + dt.timedelta(minutes=claimed_minutes)
        return HistoryEntry(at=T0 + dt.timedelta(minutes=minutes), what=what, ref=str(uuid.uuid4()),
                            by="civil_affairs", claimed_at=claimed)

    states = [state(on_time, entry("acknowledged", 10)),
              # sent two hours late, claiming to have answered within a minute
              state(backdated, entry("acknowledged", 120, claimed_minutes=1)),
              # answered after it was done: recorded as ignored by an older alerts service
              state(refused, entry("acknowledged (ignored: done)", 5))]
    answers = applied_answers(states)
    assert {(a.referral_id, a.answer) for a in answers} == {(on_time.referral_id, "acknowledged"),
                                                            (backdated.referral_id, "acknowledged")}
    row = compute([on_time, backdated, refused], answers, [], "xian", 2026, states=states).row("civil_affairs")
    assert (row.acknowledged_on_time, row.acknowledged_late, row.not_acknowledged) == (1, 1, 1)


Sample = tuple[list[Referral], list[AppliedAnswer]]


@pytest.fixture
def sample() -> Sample:
    rs = [referral("police", "child_missing_reported"), referral("police"), referral("civil_affairs"),
          referral("civil_affairs", exercise=True)]
    return rs, [answer(rs[0], 1), answer(rs[2], 120)]


def test_csv_has_one_line_per_agency_with_kind_columns(sample: Sample) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(compute(*sample, [], "xian", 2026)))))
    assert [r["agency"] for r in rows] == ["civil_affairs", "police", "total"]
    police = rows[1]
    assert police["received"] == "2" and police["acknowledged_on_time"] == "1"
    assert police["kind:child_missing_reported"] == "1" and police["kind:abandoned_infant_found"] == "1"
    assert rows[0]["drills"] == "1" and rows[0]["acknowledged_late"] == "1"


def test_markdown_names_the_deadlines_and_the_open_source(sample: Sample) -> None:
    md = to_markdown(compute(*sample, [], "xian", 2026))
    assert "2026-12-15" in md and "2026-12-20" in md
    assert "既非办结也非结案" in md and "以总线收到答复的时间计" in md
    assert "| 公安机关（`police`） | 2 | 1 |" in md


def test_write_all_writes_a_png(sample: Sample, tmp_path: Path) -> None:
    paths = write_all(compute(*sample, [], "xian", 2026), tmp_path)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["png"].name in paths["md"].read_text()


def test_rejections_count_as_rejections_not_as_answers_on_time() -> None:
    a, b, c = (referral("education") for _ in range(3))
    responses = [answer(a, 5, "rejected"), answer(b, 5), answer(c, 90)]
    row = compute([a, b, c], responses, [], "xian", 2026).row("education")
    assert (row.rejected, row.acknowledged_on_time, row.acknowledged_late, row.not_acknowledged) == (1, 1, 1, 0)
    assert row.on_time_rate == 0.5


def test_the_report_is_in_chinese_with_totals_and_late_in_the_warning_colour(sample: Sample, tmp_path: Path) -> None:
    from services.report.render import COLOURS

    report = compute(*sample, [], "xian", 2026)
    md = to_markdown(report)
    assert md.startswith("# 反拐工作年度报告：西安市")
    assert "| **合计** | 3 | 1 | 1 | 1 | 0 |" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert rows[-1]["agency"] == "total" and rows[-1]["received"] == "3"
    # Late and unanswered are warning colours (orange/red family), on time is green.
    on_time, late, missing = (int(COLOURS[k][1:3], 16) - int(COLOURS[k][3:5], 16)
                              for k in ("on_time", "late", "not_answered"))
    assert on_time < 0 < late and missing > 0  # red channel below green for on time, above it for warnings
