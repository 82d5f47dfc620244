"""Consumer-lag arithmetic and the `cases` listing, without a broker."""

from __future__ import annotations

import datetime as dt

from aiokafka import TopicPartition

from schemas.events import MissingChildReport
from services.alerts import cases, lifecycle
from services.alerts.cli import case_rows
from services.alerts.lag import LagExporter, lag_by_topic
from services.router.alert import police_alert

from .conftest import T0, clue, missing_child, referral


def test_lag_counts_from_the_commit_or_the_start() -> None:
    a0, a1, b0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)
    ends = {a0: 10, a1: 5, b0: 7}
    starts = {a0: 0, a1: 0, b0: 2}
    assert lag_by_topic(ends, starts, {a0: 8, a1: -1}) == {"a": 2 + 5, "b": 5}


def test_lag_groups_cover_agencies_and_the_router() -> None:
    groups = LagExporter.__new__(LagExporter)
    groups.router_group = "referral-router"
    g = groups.groups()
    assert g["referral-router"] == ("events.inbound",)
    assert "alerts.police" in g["agency.police.command_center"]
    assert g["agency.civil_affairs"] == ("referrals.civil_affairs",)
    assert "agency.comprehensive_governance_office" not in g  # abolished agencies have no topic


def test_case_rows_show_age_alert_state_and_clues(deadlines: object) -> None:
    from rules.deadlines import Deadlines

    report = missing_child()
    assert isinstance(report, MissingChildReport)
    case = cases.open_case(report)
    linked = cases.link_clue(case, clue(), "same place", T0)
    assert linked is not None
    alert = police_alert(report, [], Deadlines.load())
    assert alert is not None
    state = lifecycle.track_alert(alert)
    (row,) = case_rows([linked], {str(alert.alert_id): state}, T0 + dt.timedelta(minutes=90))
    assert row["age_minutes"] == 90.0 and row["alert_state"] == "sent" and row["alert_level"] == 0
    assert row["clues"] == [{"event_id": str(linked.clues[0].event_id), "kind": "child_of_unknown_origin_found",
                             "reason": "same place", "referrals": []}]


def test_case_rows_list_a_linked_clues_grouped_referrals_under_it() -> None:
    report = missing_child()
    assert isinstance(report, MissingChildReport)
    found = clue()
    linked = cases.link_clue(cases.open_case(report), found, "same place", T0)
    assert linked is not None
    state = lifecycle.track_referral(referral(found, "police", rule_id="xian.unknown_origin_child_dna"))
    grouped = cases.group_referral(state, linked.case_id, "same place", T0)
    assert grouped is not None
    (row,) = case_rows([linked], {str(grouped.id): grouped}, T0)
    clues = row["clues"]
    assert isinstance(clues, list)
    assert clues[0]["referrals"] == [{"id": str(grouped.id), "agency": "police", "status": "sent"}]
