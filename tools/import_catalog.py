"""One-off import of the reference vocabulary into the project's own catalog files.

The catalog under rules/catalog/ is the project's data and is edited by hand after import;
this script documents where it came from (../shared/plan/) and is not run by the build.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

PLAN = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/plan")
OUT = Path("rules/catalog")


def main() -> None:
    agencies = yaml.safe_load((PLAN / "agencies.yaml").read_text())
    vocab = yaml.safe_load((PLAN / "vocabulary.yaml").read_text())
    out_agencies = []
    for a in agencies["agencies"]:
        entry = {"code": a["code"], "zh": a["zh"], "en": a.get("en", "")}
        if a.get("parent"):
            entry["parent"] = a["parent"]
        succ = a.get("successor")
        if succ:
            if isinstance(succ, str):
                succ = [succ.split(" ")[0]]
            entry["successors"] = succ
        out_agencies.append(entry)
    roles = [
        {"role": r["role"], "zh": r["zh"], "supervisor": r.get("supervisor")}
        for r in agencies["reporter_roles"]
    ]
    kinds = [{"kind": k["kind"], "description": k["description"]} for k in vocab["event_kinds"]]
    urgency = [{"level": k, "description": v} for k, v in vocab["urgency_levels"].items()]
    OUT.mkdir(parents=True, exist_ok=True)
    dump("agencies.yaml", {"agencies": out_agencies})
    dump("reporter_roles.yaml", {"reporter_roles": roles})
    dump("event_kinds.yaml", {"event_kinds": kinds})
    dump("urgency.yaml", {"urgency_levels": urgency})


def dump(name: str, data: object) -> None:
    (OUT / name).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120))


if __name__ == "__main__":
    main()
