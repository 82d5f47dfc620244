"""The router's police-alert emitter: pure, deterministic, one alert per missing-child report."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from rules.deadlines import Deadlines
from schemas.alerts import PoliceAlert, alert_id_for
from services.router.alert import PoliceAlertEmitter, police_alert
from services.router.handling import written_referrals
from topics.catalog import POLICE_ALERTS

from ..alerts.conftest import clue, missing_child, referral


@pytest.fixture
def deadlines() -> Deadlines:
    return Deadlines.load()


def test_missing_child_raises_one_alert_for_the_command_centre(deadlines: Deadlines) -> None:
    event = missing_child(jurisdiction="yunyang")
    lead = referral(event, "police.command_center")
    coop = referral(event, "railway", role="cooperating", urgency="unspecified", rule_id="yunyang.dna")
    out = PoliceAlertEmitter(deadlines)(event, written_referrals([lead, coop]))
    assert len(out) == 1 and out[0].topic == POLICE_ALERTS.name
    alert = PoliceAlert.model_validate_json(out[0].value)
    assert alert.alert_id == alert_id_for(event.event_id)
    assert out[0].key == str(event.event_id).encode()  # the case id of a first report is its event id
    assert alert.agency == "police.command_center" and alert.jurisdiction == "yunyang"
    assert alert.urgency == "immediate"
    assert alert.ack_deadline == event.reported_at + dt.timedelta(minutes=5)
    assert alert.lead_referral_id == lead.referral_id
    assert alert.referral_ids == (coop.referral_id,)
    assert alert.descriptors.age == 6 and alert.descriptors.place == "西安北站"


def test_same_report_twice_gives_the_same_alert(deadlines: Deadlines) -> None:
    event = missing_child()
    refs = written_referrals([referral(event, "police.command_center")])
    emit = PoliceAlertEmitter(deadlines)
    assert emit(event, refs) == emit(event, refs)


def test_case_id_keys_the_alert_when_given(deadlines: Deadlines) -> None:
    import uuid

    case = uuid.uuid4()
    event = missing_child(case_id=case)
    alert = police_alert(event, [], deadlines)
    assert alert is not None and alert.case_id == case and alert.key == str(case).encode()


def test_no_lead_still_alerts_the_command_centre_urgently(deadlines: Deadlines) -> None:
    event = missing_child()
    slow_police = referral(event, "police", urgency="unspecified", rule_id="x.dna")
    alert = police_alert(event, [slow_police], deadlines)
    assert alert is not None
    assert alert.agency == "police.command_center" and alert.urgency == "immediate"
    assert alert.lead_referral_id == slow_police.referral_id  # a police lead stands in


def test_other_kinds_raise_nothing(deadlines: Deadlines) -> None:
    event = clue()
    assert PoliceAlertEmitter(deadlines)(event, written_referrals([referral(event, "police")])) == ()


def test_exercise_is_marked(deadlines: Deadlines) -> None:
    event = missing_child(exercise=True)
    (out,) = PoliceAlertEmitter(deadlines)(event, [])
    assert json.loads(out.value)["exercise"] is True


@pytest.mark.parametrize("variable", ["REFERRAL_BUS_ALERTS_DEADLINES_FILE", "REFERRAL_BUS_ROUTER_ALERT_DEADLINES_FILE"])
def test_the_router_raises_the_alert_with_the_deadlines_file_the_alerts_service_reads(
        monkeypatch: pytest.MonkeyPatch, deadlines: Deadlines, variable: str) -> None:
    from pathlib import Path

    from services.router.settings import RouterSettings

    short = Path(__file__).parents[2] / "integration" / "alerts" / "deadlines-short.yaml"
    assert RouterSettings().alert_deadlines(deadlines) is deadlines
    monkeypatch.setenv(variable, str(short))
    event = missing_child()
    alert = police_alert(event, [], RouterSettings().alert_deadlines(deadlines))
    ack_within = Deadlines.load(short).for_level("immediate").ack_within
    assert ack_within is not None
    assert alert is not None and alert.ack_deadline == event.reported_at + ack_within


def test_the_alert_carries_the_command_centres_need_to_know_of_the_child(deadlines: Deadlines) -> None:
    event = missing_child().model_copy(update={"description": "red coat"})
    alert = police_alert(event, [], deadlines)
    assert alert is not None
    assert alert.subject["person"] == {"age": 6, "sex": "female"} and alert.subject["description"] == "red coat"
    assert alert.subject["last_seen_location"] == {"place": "西安北站"}
    # With the command centre's own lead referral, exactly what that referral carries.
    lead = referral(event, "police.command_center").model_copy(update={"subject": {"person": {"age": 6}}})
    with_lead = police_alert(event, [lead], deadlines)
    assert with_lead is not None and with_lead.subject == {"person": {"age": 6}}
