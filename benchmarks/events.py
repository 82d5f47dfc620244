"""Synthetic but realistic events for benchmarks (~560 bytes of JSON each)."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

KINDS = [
    ("transport_hub_suspected_trafficking", "xx_city", "transport", "transport_worker"),
    ("medical_staff_suspects_trafficking", "yunyang", "health", "medical_staff"),
    ("abandoned_infant_found", "xian", "health", "medical_staff"),
    ("rescued_victim_job_training", "shandong", "police", "police_officer"),
    ("womens_federation_finds_unknown_origin_person", "honghe", "womens_federation", "womens_federation_cadre"),
]


def events(n: int, seed: int = 7) -> list[bytes]:
    rnd = random.Random(seed)
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    out = []
    for i in range(n):
        kind, jurisdiction, agency, role = KINDS[i % len(KINDS)]
        out.append(json.dumps({
            "event_id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            "kind": kind, "jurisdiction": jurisdiction,
            "occurred_at": (now - dt.timedelta(hours=1)).isoformat(timespec="seconds"),
            "reported_at": now.isoformat(timespec="seconds"),
            "reporter": {"agency": agency, "role": role},
            "person": {"age": rnd.randint(0, 17), "sex": rnd.choice(["female", "male"]),
                       "nationality": "CN", "disability": "none", "willing_to_train": True},
            "location": {"place": "汽车客运站"},
            "suspicion": "trafficking_or_related_crime",
            "description": "Adult with a child who cannot say where they are going; the child seems afraid. "
                           "Staff kept them in the waiting room and called the station police.",
        }, ensure_ascii=False).encode())
    return out
