"""What the pager shows: only pages addressed to the agency (and jurisdiction), unreadable ones skipped."""

from __future__ import annotations

import datetime as dt
import uuid

from aiokafka.structs import ConsumerRecord

from referral_bus.schemas.alerts import Escalation, PoliceAlert, alert_id_for
from referral_bus.services.alerts.pager import pages_in
from referral_bus.topics.catalog import ESCALATIONS, POLICE_ALERTS

NOW = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
EVENT = uuid.uuid4()


def record(topic: str, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, 0, 0, 0, None, value, None, 0, len(value), ())


def alert(attempt: int = 1, jurisdiction: str = "xian") -> PoliceAlert:
    return PoliceAlert(alert_id=alert_id_for(EVENT), case_id=EVENT, event_id=EVENT, jurisdiction=jurisdiction,
                       agency="police.command_center", urgency="immediate", action="Deploy at once",
                       raised_at=NOW, ack_deadline=NOW + dt.timedelta(minutes=5), attempt=attempt)


def test_alerts_and_resends_are_distinct_pages_for_the_addressed_centre() -> None:
    first = list(pages_in(record(POLICE_ALERTS.name, alert(1).model_dump_json().encode()),
                          "police.command_center", "xian"))
    resent = list(pages_in(record(POLICE_ALERTS.name, alert(2).model_dump_json().encode()),
                           "police.command_center", None))
    assert [p.page_id for p in first] == [alert(1).delivery_id]
    assert [p.page_id for p in resent] == [alert(2).delivery_id] and "RE-SENT" in resent[0].text


def test_pages_for_other_agencies_or_jurisdictions_are_not_shown() -> None:
    value = alert(jurisdiction="yunyang").model_dump_json().encode()
    assert not list(pages_in(record(POLICE_ALERTS.name, value), "police.command_center", "xian"))
    assert not list(pages_in(record(POLICE_ALERTS.name, value), "anti_trafficking_office", None))


def test_an_escalation_pages_its_target() -> None:
    esc = Escalation(escalation_id=uuid.uuid4(), referral_id=alert_id_for(EVENT), case_id=EVENT, action="escalate",
                     step=2, level=1, target_agency="anti_trafficking_office", target_jurisdiction="xian",
                     reason="not acknowledged", decided_at=NOW, ack_deadline=None)
    (page,) = pages_in(record(ESCALATIONS.name, esc.model_dump_json().encode()), "anti_trafficking_office", "xian")
    assert page.page_id == str(esc.escalation_id) and "ESCALATE" in page.text


def test_an_unreadable_message_is_not_a_page() -> None:
    assert not list(pages_in(record(POLICE_ALERTS.name, b"{not json"), "police.command_center", None))
