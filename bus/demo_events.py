"""The demo's scripted events: realistic situations from the five plans, timed relative to now.

The personal values here are invented; the privacy test checks that none of them reaches a log
line or a metric label while the demo runs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

CST = dt.timezone(dt.timedelta(hours=8))

#: Personal values published by the demo, which must never appear in logs or metric labels.
PERSONAL_VALUES = ("王小明", "610113201903150012", "雁塔区电子二路18号", "刘招娣", "李春花",
                   "370102200909090046", "张宝宝")


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def scripted_events(now: dt.datetime | None = None, run: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """The five demo situations (one run's event ids are derived from `run`, so each run is new)."""
    now = (now or dt.datetime.now(CST)).astimezone(CST)
    run = run or uuid.uuid4()

    def eid(n: int) -> str:
        return str(uuid.uuid5(run, f"demo-{n}"))

    return [
        {   # 西安 第五条 / 第十二条: a parent reports a missing child to the police.
            "event_id": eid(1), "kind": "child_missing_reported", "jurisdiction": "xian",
            "occurred_at": _iso(now - dt.timedelta(minutes=40)), "reported_at": _iso(now),
            "reporter": {"agency": None, "role": "parent_or_guardian"},
            "person": {"age": 6, "sex": "male", "nationality": "CN", "disability": "none",
                       "name": "王小明", "id_number": "610113201903150012",
                       "distinguishing_features": "red jacket, mole under left eye"},
            "location": {"place": "西安市雁塔区", "address": "雁塔区电子二路18号", "lat": 34.214, "lon": 108.947},
            "last_seen_at": _iso(now - dt.timedelta(minutes=40)),
            "last_seen_location": {"place": "西安市雁塔区大雁塔北广场", "lat": 34.222, "lon": 108.964},
            "description": "Child last seen at the square with his grandmother; not found after 30 minutes.",
        },
        {   # XX市 第四十条: coach-station staff see a woman escorting a drowsy toddler who is not hers.
            "event_id": eid(2), "kind": "transport_hub_suspected_trafficking", "jurisdiction": "xx_city",
            "occurred_at": _iso(now - dt.timedelta(minutes=15)), "reported_at": _iso(now - dt.timedelta(minutes=5)),
            "reporter": {"agency": "transport", "role": "transport_worker"},
            "person": {"age": 2, "sex": "female", "nationality": "CN"},
            "location": {"place": "XX市长途汽车客运站"},
            "suspicion": "trafficking_or_related_crime",
            "description": "Adult buying a coach ticket cannot name the child; child appears sedated.",
        },
        {   # 云阳: a nurse's mandatory report of a newborn without a birth certificate.
            "event_id": eid(3), "kind": "medical_staff_suspects_trafficking", "jurisdiction": "yunyang",
            "occurred_at": _iso(now - dt.timedelta(hours=2)), "reported_at": _iso(now - dt.timedelta(hours=1)),
            "reporter": {"agency": "health", "role": "medical_staff"},
            "person": {"age": 0, "sex": "female", "nationality": "CN", "disability": "none", "name": "刘招娣"},
            "location": {"place": "云阳县人民医院"},
            "suspicion": "trafficking_or_related_crime",
            "description": "Newborn brought in by a couple who cannot show a birth certificate; "
                           "they asked for one to be issued.",
        },
        {   # 山东: a rescued 17-year-old who wants vocational training.
            "event_id": eid(4), "kind": "rescued_victim_job_training", "jurisdiction": "shandong",
            "occurred_at": _iso(now - dt.timedelta(days=1)), "reported_at": _iso(now - dt.timedelta(hours=3)),
            "reporter": {"agency": "police", "role": "police_officer"},
            "person": {"age": 17, "sex": "female", "nationality": "CN", "willing_to_train": True,
                       "name": "李春花", "id_number": "370102200909090046"},
            "location": {"place": "济南市"},
            "description": "Rescued from a forced-labour workshop; wants to learn a trade.",
        },
        {   # 西安: an abandoned infant found at a hospital gate.
            "event_id": eid(5), "kind": "abandoned_infant_found", "jurisdiction": "xian",
            "occurred_at": _iso(now - dt.timedelta(hours=1)), "reported_at": _iso(now - dt.timedelta(minutes=30)),
            "reporter": {"agency": "health", "role": "medical_staff"},
            "person": {"age": 0, "sex": "male", "nationality": "CN", "origin_unknown": True, "name": "张宝宝"},
            "location": {"place": "西安市未央区"},
            "description": "Infant found in a basket at the hospital gate at dawn.",
        },
    ]


#: A message that is not a valid event: the demo shows it reaching the dead-letter topic.
INVALID_EVENT = b'{"event_id": "not-a-uuid", "kind": "child_missing_reported", "jurisdiction": "atlantis"}'
