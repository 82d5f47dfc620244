"""The router's police-alert output: a missing-child report raises an urgent alert in the same step.

Pure: the alert is a function of the event and its referrals (and the alert deadlines the router
is configured with, `RouterSettings.alert_deadlines`), so a report routed twice raises the same
alert with the same id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rules.catalog import COMMAND_CENTER, MISSING_CHILD, catalog, is_police
from rules.deadlines import Deadlines
from rules.projection import project
from schemas.alerts import PoliceAlert, alert_id_for, descriptors_of
from schemas.cases import report_case
from schemas.encoding import dump_values
from schemas.events import Event
from schemas.referrals import Referral
from services.router.handling import Outgoing
from topics.catalog import POLICE_ALERTS

#: An alert is urgent even where a pack gives a slower word for the police's duty.
ALERT_URGENCY = "immediate"
DEFAULT_ACTION = ("Rapid child-missing search (儿童失踪快速查找机制): deploy officers at once to "
                  "intercept and search.")
DEFAULT_ACTION_ZH = "落实儿童失踪快速查找机制,迅速调集警力开展堵截、查找工作"


def _lead(referrals: Sequence[Referral]) -> Referral | None:
    """The command centre's lead referral; failing that, any police lead (packs that name only 公安)."""
    leads = [r for r in referrals if r.role == "lead"]
    for r in leads:
        if r.agency == COMMAND_CENTER:
            return r
    return next((r for r in leads if is_police(r.agency)), None)


def _most_urgent(*levels: str) -> str:
    return min(levels, key=catalog().urgency_rank)


def police_alert(event: Event, referrals: Sequence[Referral], deadlines: Deadlines) -> PoliceAlert | None:
    """The urgent alert a missing-child report raises for its jurisdiction's command centre."""
    values = police_alert_values(event, referrals, deadlines)
    return None if values is None else PoliceAlert(**values)


def police_alert_values(event: Event, referrals: Sequence[Referral], deadlines: Deadlines
                        ) -> dict[str, Any] | None:
    """The fields of `police_alert` (every one in the model's order, but `schema_version`, the
    model's default), from the validated event and the referrals the engine built."""
    if event.kind != MISSING_CHILD:
        return None
    lead = _lead(referrals)
    urgency = _most_urgent(lead.urgency, ALERT_URGENCY) if lead else ALERT_URGENCY
    return {
        "alert_id": alert_id_for(event.event_id),
        "case_id": report_case(event),
        "event_id": event.event_id,
        "jurisdiction": event.jurisdiction,
        "agency": COMMAND_CENTER,
        "urgency": urgency,
        "action": lead.action if lead else DEFAULT_ACTION,
        "action_zh": lead.action_zh if lead and lead.action_zh else DEFAULT_ACTION_ZH,
        "raised_at": event.reported_at,
        "ack_deadline": deadlines.ack_by(urgency, event.reported_at),
        "attempt": 1,
        "exercise": event.exercise,
        "lead_referral_id": lead.referral_id if lead else None,
        "referral_ids": tuple(r.referral_id for r in referrals if r is not lead),
        "rule_id": lead.rule_id if lead else None,
        "citation": lead.citation if lead else None,
        "descriptors": descriptors_of(event),
        # The command centre's own referral carries its need-to-know (with the rule's field changes);
        # without one, the catalog's projection for the command centre.
        "subject": lead.subject if lead is not None and lead.agency == COMMAND_CENTER
        else project(event, COMMAND_CENTER),
    }


@dataclass(frozen=True)
class PoliceAlertEmitter:
    """An `Emitter` for the router: one `PoliceAlert` on `alerts.police` per missing-child report,
    keyed by case id so that everything about one case stays in order."""

    deadlines: Deadlines

    def __call__(self, event: Event, referrals: Sequence[Referral]) -> Sequence[Outgoing]:
        # Serialised as the model writes it, without validating what the bus built (schemas/encoding.py).
        values = police_alert_values(event, referrals, self.deadlines)
        if values is None:
            return ()
        key = str(values["case_id"]).encode()  # PoliceAlert.key
        return (Outgoing(POLICE_ALERTS.name, key, dump_values(PoliceAlert, values)),)
