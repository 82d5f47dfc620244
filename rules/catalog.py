"""The domain catalog: agencies, event kinds, reporter roles, urgency levels, jurisdictions.

Loaded once from the YAML files beside this module and validated; everything else (schemas,
rule packs, topics) refers to these codes.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CATALOG_DIR = Path(__file__).parent / "catalog"

#: Receives every event that no rule covers, for manual triage (反拐联席会议办公室, hosted by the police).
JOINT_OFFICE = "anti_trafficking_office"
#: Leads the rapid child-missing search (儿童失踪快速查找机制).
COMMAND_CENTER = "police.command_center"
#: The police (公安机关): every police unit is an agency below it in the catalog (`Agency.parent`).
POLICE = "police"

# The event kinds the bus acts on by name; the catalog lists every kind, and the event models
# (`schemas/events.py`) give these their own fields.
#: Opens a missing-child case and raises the police alert (儿童失踪快速查找机制).
MISSING_CHILD = "child_missing_reported"
#: The police close a case (一长三包: only a resolution closes it).
CASE_RESOLVED = "case_resolved"
#: The police release a missing child's public broadcast (团圆).
INFO_RELEASE = "missing_child_info_release"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Agency(_Frozen):
    code: str
    zh: str
    en: str = ""
    parent: str | None = None
    successors: tuple[str, ...] = ()
    #: How the plans write this unit (e.g. 公安 for 公安机关/公安厅/公安局): a rule's naming quote
    #: must contain one of them.
    names: tuple[str, ...] = ()

    @property
    def abolished(self) -> bool:
        return bool(self.successors)

    @property
    def short_zh(self) -> str:
        """The Chinese name without the bracketed variants, for messages people read."""
        return self.zh.split("(")[0].split(" / ")[0]


class EventKind(_Frozen):
    kind: str
    description: str
    zh: str = Field(default="", description="What a person reads in Chinese (the console, receipts).")
    #: False for a kind that assigns no duty of its own but acts on a case the bus already holds
    #: (`case_resolved` closes the case and stops its pages): the router refers it to no agency,
    #: and a rule pack may not route it.
    routed: bool = True


class ReporterRole(_Frozen):
    role: str
    zh: str
    supervisor: str | None = None


class UrgencyLevel(_Frozen):
    level: str
    description: str
    zh: str = Field(default="", description="The plans' own word for it (紧急, 迅速 ...).")


class Period(_Frozen):
    start: dt.date
    end: dt.date


class Jurisdiction(_Frozen):
    code: str
    zh: str
    level: str
    parent: str | None
    period: Period
    in_seed: bool
    seed: str | None = None
    #: The plan that replaced this one when its period ended (national 2013-2020 -> 2021-2030):
    #: events after the end route by it where it covers the situation (guidance 7).
    succeeded_by: str | None = None
    timezone: str = Field(description="IANA zone of the jurisdiction's local time: every time a person "
                                      "reads about its alerts and referrals is shown in it.")

    @model_validator(mode="after")
    def _known_zone(self) -> Jurisdiction:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"jurisdiction {self.code}: unknown time zone {self.timezone!r}") from exc
        return self

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def expired_on(self, day: dt.date) -> bool:
        return day > self.period.end


class Catalog(_Frozen):
    agencies: dict[str, Agency]
    event_kinds: dict[str, EventKind]
    reporter_roles: dict[str, ReporterRole]
    urgency_levels: tuple[str, ...] = Field(description="Most urgent first.")
    jurisdictions: dict[str, Jurisdiction]
    #: Names of bodies the plans give duties to that are no agency of the bus (governments).
    other_body_names: tuple[str, ...] = ()
    urgency_zh: dict[str, str] = Field(default_factory=dict, description="Level -> its Chinese word.")

    @model_validator(mode="after")
    def _references_resolve(self) -> Catalog:
        for a in self.agencies.values():
            for ref in (a.parent, *a.successors):
                if ref is not None and ref not in self.agencies:
                    raise ValueError(f"agency {a.code}: unknown agency {ref!r}")
        for j in self.jurisdictions.values():
            if j.parent is not None and j.parent not in self.jurisdictions:
                raise ValueError(f"jurisdiction {j.code}: unknown parent {j.parent!r}")
            if j.succeeded_by is not None and j.succeeded_by not in self.jurisdictions:
                raise ValueError(f"jurisdiction {j.code}: unknown successor {j.succeeded_by!r}")
        return self

    def chain(self, jurisdiction: str) -> tuple[str, ...]:
        """The jurisdiction and its ancestors, nearest first."""
        out: list[str] = []
        code: str | None = jurisdiction
        while code is not None:
            out.append(code)
            code = self.jurisdictions[code].parent
        return tuple(out)

    def is_within(self, agency: str | None, ancestor: str) -> bool:
        """Whether `agency` is `ancestor` or one of its units, following the catalog's parents."""
        while agency is not None:
            if agency == ancestor:
                return True
            found = self.agencies.get(agency)
            agency = found.parent if found else None
        return False

    def urgency_rank(self, level: str) -> int:
        """0 is the most urgent."""
        return self.urgency_levels.index(level)


def _load(name: str) -> object:
    return yaml.safe_load((CATALOG_DIR / name).read_text(encoding="utf-8"))


@cache
def catalog() -> Catalog:
    """The validated catalog (read once per process)."""
    agency_file = _load("agencies.yaml")
    assert isinstance(agency_file, dict)
    agencies = agency_file["agencies"]
    other_bodies = agency_file.get("other_bodies", {}).get("names", ())
    kinds = _load("event_kinds.yaml")["event_kinds"]  # type: ignore[index]
    roles = _load("reporter_roles.yaml")["reporter_roles"]  # type: ignore[index]
    urgency = _load("urgency.yaml")["urgency_levels"]  # type: ignore[index]
    jurisdictions = _load("jurisdictions.yaml")["jurisdictions"]  # type: ignore[index]
    return Catalog(
        agencies={a["code"]: Agency(**a) for a in agencies},
        event_kinds={k["kind"]: EventKind(**k) for k in kinds},
        reporter_roles={r["role"]: ReporterRole(**r) for r in roles},
        urgency_levels=tuple(u["level"] for u in urgency),
        urgency_zh={u["level"]: UrgencyLevel(**u).zh for u in urgency},
        jurisdictions={j["code"]: Jurisdiction(**j) for j in jurisdictions},
        other_body_names=tuple(other_bodies),
    )


def is_police(agency: str | None) -> bool:
    """A police agency or one of its units (police.command_center, police.local_station, …)."""
    return catalog().is_within(agency, POLICE)
