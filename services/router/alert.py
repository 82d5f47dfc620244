"""The router's police-alert output: a missing-child report raises an urgent alert in the same step.

Pure: the alert is a function of the event and its referrals (and the alert deadlines the router
is configured with, `RouterSettings.alert_deadlines`), so a report routed twice raises the same
alert with the same id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic_core import to_json

from rules.catalog import COMMAND_CENTER, MISSING_CHILD, catalog, is_police
from rules.deadlines import Deadlines
from rules.engine import WrittenReferral
from rules.projection import project
from schemas.alerts import ALERT_NAMESPACE, PoliceAlert, alert_id_for, descriptor_values, descriptors_of
from schemas.cases import report_case
from schemas.encoding import Uuid5, template, text_json
from schemas.events import Event
from schemas.referrals import Referral
from services.router.handling import Outgoing, event_parts, made
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


#: The alert's fields written per report (all but `schema_version`, `agency` and `attempt`).
_HOLES = ("alert_id", "case_id", "event_id", "jurisdiction", "urgency", "action", "action_zh", "raised_at",
          "ack_deadline", "exercise", "lead_referral_id", "referral_ids", "rule_id", "citation", "descriptors",
          "subject")
_WRITTEN = template(PoliceAlert, _HOLES, {"agency": COMMAND_CENTER, "attempt": 1})
#: `alert_id_for` as text, with its namespace and prefix hashed once.
_ALERT_IDS = Uuid5(ALERT_NAMESPACE, "alert|")
_NULL = b"null"
_DEFAULT_ACTION_JSON = to_json(DEFAULT_ACTION)
_DEFAULT_ACTION_ZH_JSON = to_json(DEFAULT_ACTION_ZH)
_ALERT_URGENCY_JSON = to_json(ALERT_URGENCY)


@lru_cache(maxsize=256)
def _alert_urgency(lead_urgency: str) -> str:
    return _most_urgent(lead_urgency, ALERT_URGENCY)


@lru_cache(maxsize=1024)
def _citation_json(file: str, clause: str, quote: str) -> bytes:
    return to_json({"file": file, "clause": clause, "quote": quote})  # Citation's fields, in order


def _written_lead(written: Sequence[WrittenReferral]) -> WrittenReferral | None:
    """`_lead` of the written referrals."""
    police = None
    for w in written:
        r = w.duty
        if r.role == "lead":
            if r.agency == COMMAND_CENTER:
                return w
            if police is None and is_police(r.agency):
                police = w
    return police


@dataclass(frozen=True)
class PoliceAlertEmitter:
    """An `Emitter` for the router: one `PoliceAlert` on `alerts.police` per missing-child report,
    keyed by case id so that everything about one case stays in order."""

    deadlines: Deadlines

    def __call__(self, event: Event, written: Sequence[WrittenReferral]) -> Sequence[Outgoing]:
        # `police_alert(event, referrals, deadlines).model_dump_json()`, written from the parts of
        # the referrals' messages (ids, times, the event's fields, the command centre's subject)
        # and the rule's words as written before, without building or validating the alert.
        if event.kind != MISSING_CHILD:
            return ()
        shared = event_parts(event, written)
        event_id = shared["event_id"]
        case_id = shared["case_id"] if event.case_id is not None else event_id  # report_case
        found = _written_lead(written)
        if found is None:
            urgency = ALERT_URGENCY
            urgency_json, action, action_zh = _ALERT_URGENCY_JSON, _DEFAULT_ACTION_JSON, _DEFAULT_ACTION_ZH_JSON
            lead_id = rule_id = citation = _NULL
        else:
            lead, parts = found.duty, found.parts
            urgency = _alert_urgency(lead.urgency)
            urgency_json, action = text_json(urgency), text_json(lead.action)
            action_zh = text_json(lead.action_zh) if lead.action_zh else _DEFAULT_ACTION_ZH_JSON
            lead_id, rule_id = parts["referral_id"], text_json(lead.rule_id)
            c = lead.citation
            citation = _citation_json(c.file, c.clause, c.quote)
        subject = (found.parts["subject"] if found is not None and found.duty.agency == COMMAND_CENTER
                   else to_json(project(event, COMMAND_CENTER)))
        value = _WRITTEN.fill(
            _ALERT_IDS.json(event_id[1:-1]), case_id, event_id,
            shared["jurisdiction"], urgency_json, action, action_zh, shared["reported_at"],
            to_json(self.deadlines.ack_by(urgency, event.reported_at)), shared["exercise"], lead_id,
            b"[%s]" % b",".join([w.parts["referral_id"] for w in written if w is not found]), rule_id, citation,
            to_json(descriptor_values(event)), subject)
        return (made(Outgoing, (POLICE_ALERTS.name, case_id[1:-1], value)),)  # PoliceAlert.key
