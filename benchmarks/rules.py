"""Rule-engine benchmark: µs per routed event for each jurisdiction (full pack chain), with the
referrals written as messages (`route_written`, the router's step) and the rule evaluation alone
(which duties: `duties_for`) beside it, and a
baseline measured in the same run (json.loads + json.dumps of each event's JSON), and for a
synthetic pack of 1,000 rules: spread over every kind (the events match some of them), and all of
one kind that none of the events has (routing should not notice them: flat in the rules that do
not match an event's kind). Prints a table, then one JSON object on the last line.

    .venv/bin/python -m benchmarks.rules [--rounds N] [--synthetic-rules N] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from benchmarks.support import print_result
from rules.catalog import catalog
from rules.engine import DEFAULT_PACKS_DIR, RuleBook, compile_packs, duties_for, load_packs, route, route_written
from schemas.events import Event, parse_event_obj

NOW = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
PERSONS: list[dict[str, Any]] = [
    {"age": 6, "sex": "male"},
    {"age": 16, "sex": "female", "cannot_or_will_not_return_home": True, "willing_to_train": True},
    {"age": 35, "sex": "male", "disability": "intellectual"},
    {"age": 24, "sex": "female", "nationality": "VN", "wishes": ["stay_in_marriage"]},
]


def _event(kind: str, jurisdiction: str, person: dict[str, Any], i: int) -> Event:
    raw: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=i)), "kind": kind, "jurisdiction": jurisdiction,
        "occurred_at": NOW.isoformat(), "reported_at": NOW.isoformat(),
        "reporter": {"role": "public"}, "person": person, "location": {"place": "station"}}
    if kind == "child_missing_reported":
        raw["person"] = {**person, "age": 6}
        raw.update(last_seen_at=NOW.isoformat(), last_seen_location={"place": "station"})
    if kind in ("case_resolved", "missing_child_info_release"):
        raw["case_id"] = str(uuid.UUID(int=7))
    if kind == "case_resolved":
        raw["outcome"] = "found_alive"
    if kind == "missing_child_info_release":
        raw.update(guardian_consent=True, public_contact="110")
    return parse_event_obj(raw)


def events_for(jurisdiction: str) -> list[Event]:
    """Every event kind of the catalog, with a few different persons each."""
    out = []
    for i, kind in enumerate(sorted(catalog().event_kinds)):
        for j, person in enumerate(PERSONS):
            out.append(_event(kind, jurisdiction, person, i * 10 + j))
    return out


class Figures(NamedTuple):
    """Per event, best of the passes: `route` (the rules evaluated and the referrals written
    with their subjects, ids and deadlines), `route_written` (the same referrals as their
    messages, as the router's step takes them), the rule evaluation alone (`duties_for`: who must
    act), referrals, and the baseline (json.loads + json.dumps of the event's JSON)."""

    route_us: float
    written_us: float
    evaluation_us: float
    referrals: float
    baseline_us: float


def per_event_us(book: RuleBook, events: list[Event], rounds: int) -> Figures:
    """The figures of `events` routed with `book`, best of `rounds` passes each, interleaved."""
    best = written = evaluation = base = float("inf")
    count = 0
    raws = [e.model_dump_json() for e in events]
    for _ in range(rounds):
        t0 = time.perf_counter()
        count = sum(len(route(e, book)) for e in events)
        best = min(best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for e in events:
            route_written(e, book)
        written = min(written, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for e in events:
            duties_for(e, book)
        evaluation = min(evaluation, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for raw in raws:
            json.dumps(json.loads(raw), ensure_ascii=False)
        base = min(base, time.perf_counter() - t0)
    n = len(events)
    return Figures(best / n * 1e6, written / n * 1e6, evaluation / n * 1e6, count / n, base / n * 1e6)


def synthetic_book(n_rules: int = 1000, kinds: list[str] | None = None) -> RuleBook:
    """national_2021 and shaanxi as shipped, and a xian pack of `n_rules` generated rules spread
    over `kinds` (default: every event kind a rule may route, the catalog's `routed` kinds), each
    with two conditions."""
    tmp = Path(tempfile.mkdtemp(prefix="rulebench-"))
    try:
        for name in ("national_2021", "shaanxi"):
            shutil.copy(DEFAULT_PACKS_DIR / f"{name}.yaml", tmp / f"{name}.yaml")
        kinds = kinds or sorted(k for k, kind in catalog().event_kinds.items() if kind.routed)
        agencies = sorted(a for a in catalog().agencies
                          if a != "unspecified" and not catalog().agencies[a].abolished)
        national_keys = {r.key for r in load_packs(DEFAULT_PACKS_DIR)["national_2021"].rules}
        rules = []
        for i in range(n_rules):
            rules.append({
                "key": f"synthetic_{i:04d}",
                "when": {"kind": kinds[i % len(kinds)],
                         "all": [{"field": "person.age", "op": "ge", "value": i % 40},
                                 {"field": "person.sex", "op": "in",
                                  "value": ["female", "male"][: 1 + i % 2]}]},
                "lead": [agencies[i % len(agencies)]], "action": f"synthetic duty {i}",
                "action_zh": f"合成职责 {i}", "names": {agencies[i % len(agencies)]: "反拐"},
                "urgency": catalog().urgency_levels[i % 9],
                "source": {"file": "001_56bdd0a940e471fd.txt", "clause": "第一条",
                           "quote": "反拐"}})
        assert not national_keys & {r["key"] for r in rules}
        pack = {"jurisdiction": "xian", "parent": "shaanxi", "seed": "001_56bdd0a940e471fd.txt",
                "rules": rules}
        (tmp / "xian.yaml").write_text(yaml.safe_dump(pack, allow_unicode=True), encoding="utf-8")
        return compile_packs(load_packs(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=None, help="Passes per figure, the best kept (default 5).")
    parser.add_argument("--synthetic-rules", type=int, default=None,
                        help="Rules of the synthetic pack (default 1,000).")
    parser.add_argument("--quick", action="store_true",
                        help="One pass, a synthetic pack of 100 rules: checks that the benchmark runs.")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 5)
    n_rules = args.synthetic_rules or (100 if args.quick else 1000)
    t0 = time.perf_counter()
    book = compile_packs(load_packs())
    compile_ms = (time.perf_counter() - t0) * 1e3
    results: dict[str, Any] = {"quick": args.quick, "rounds": rounds, "compile_ms": round(compile_ms, 1),
                               "rules": book.rule_count, "us_per_event": {}}
    print(f"compiled {book.rule_count} rules in {compile_ms:.0f} ms")
    print(f"{'jurisdiction':16} {'chain':45} {'µs/event':>9} {'written µs':>10} {'evaluation µs':>13} "
          f"{'referrals/event':>16} {'baseline µs':>12} {'ratio':>6}")
    results["baseline_us_per_event"], results["ratio"], results["evaluation_us_per_event"] = {}, {}, {}
    results["written_us_per_event"] = {}
    for code in sorted(book.chains):
        f = per_event_us(book, events_for(code), rounds)
        results["us_per_event"][code] = round(f.route_us, 1)
        results["written_us_per_event"][code] = round(f.written_us, 1)
        results["evaluation_us_per_event"][code] = round(f.evaluation_us, 1)
        results["baseline_us_per_event"][code] = round(f.baseline_us, 1)
        results["ratio"][code] = round(f.route_us / f.baseline_us, 2)
        print(f"{code:16} {' -> '.join(book.chains[code]):45} {f.route_us:9.1f} {f.written_us:10.1f} "
              f"{f.evaluation_us:13.1f} {f.referrals:16.2f} {f.baseline_us:12.1f} {f.route_us / f.baseline_us:6.1f}")
    t0 = time.perf_counter()
    synth = synthetic_book(n_rules)
    synth_ms = (time.perf_counter() - t0) * 1e3
    f = per_event_us(synth, events_for("xian"), rounds)
    print(f"{'synthetic':16} {f'{n_rules} rules + national_2021':45} {f.route_us:9.1f} {f.written_us:10.1f} "
          f"{f.evaluation_us:13.1f} "
          f"{f.referrals:16.2f} {f.baseline_us:12.1f} {f.route_us / f.baseline_us:6.1f}   "
          f"(load+compile {synth_ms:.0f} ms)")
    results["synthetic"] = {"rules": n_rules, "us_per_event": round(f.route_us, 1),
                            "written_us_per_event": round(f.written_us, 1),
                            "evaluation_us_per_event": round(f.evaluation_us, 1),
                            "referrals_per_event": round(f.referrals, 2), "compile_ms": round(synth_ms, 1),
                            "baseline_us_per_event": round(f.baseline_us, 1)}
    # The same number of rules all for one kind, against one rule of it: the xian events of every
    # other kind, routed by both books in the same passes, should not notice the difference.
    unused = sorted(k for k, kind in catalog().event_kinds.items() if kind.routed)[0]
    others = [e for e in events_for("xian") if e.kind != unused]
    crowded_us = per_event_us(synthetic_book(n_rules, kinds=[unused]), others, rounds).route_us
    sparse_us = per_event_us(synthetic_book(1, kinds=[unused]), others, rounds).route_us
    print(f"{'other kinds':16} {f'{n_rules} rules, all of {unused}':45} {crowded_us:9.1f}"
          f"   against 1 rule of it: {sparse_us:.1f} µs, ratio {crowded_us / sparse_us:.2f}")
    results["flat"] = {"rules_of_another_kind": n_rules, "kind": unused, "us_per_event": round(crowded_us, 1),
                       "one_rule_us_per_event": round(sparse_us, 1), "ratio": round(crowded_us / sparse_us, 2)}
    print_result(results)


if __name__ == "__main__":
    main()
