"""Facts the console shares with the rest of the bus: the officer on an answer, who an alert was
addressed to, each jurisdiction's time zone in the catalog."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rules.catalog import Jurisdiction, catalog
from schemas.alerts import ReferralResponse
from services.alerts.lifecycle import apply_response

from .console_fakes import T0, alert_pair, escalated


def test_the_tracked_state_records_who_answered() -> None:
    alert, _ = alert_pair()
    response = ReferralResponse(referral_id=alert.id, answer="acknowledged", agency="police.command_center",
                                officer="王明 (cc-wang)", responded_at=T0)
    entry = apply_response(alert, response, T0).state.history[-1]
    assert (entry.what, entry.by, entry.officer) == ("acknowledged", "police.command_center", "王明 (cc-wang)")
    with pytest.raises(ValidationError):
        ReferralResponse(referral_id=alert.id, answer="acknowledged", officer="")


def test_addressed_to_is_the_receiver_and_every_agency_an_escalation_reached() -> None:
    alert, _ = alert_pair()
    assert alert.addressed_to() == {"police.command_center"}
    assert escalated(alert).addressed_to() == {"police.command_center", "anti_trafficking_office"}
    # Escalated on to a parent's command centre, the joint office it reached before stays entitled.
    twice = escalated(escalated(alert), to="police.criminal_investigation", level=2)
    assert twice.target_agency == "police.criminal_investigation"
    assert twice.addressed_to() == {"police.command_center", "anti_trafficking_office",
                                    "police.criminal_investigation"}


def test_every_jurisdiction_has_a_known_time_zone() -> None:
    assert {j.timezone for j in catalog().jurisdictions.values()} == {"Asia/Shanghai"}
    raw = catalog().jurisdictions["xian"].model_dump()
    with pytest.raises(ValidationError, match="unknown time zone"):
        Jurisdiction.model_validate({**raw, "timezone": "Mars/Olympus"})
