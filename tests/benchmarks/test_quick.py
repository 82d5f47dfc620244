"""Every benchmark runs in its quick mode and ends with its JSON line: `make bench` cannot break
unnoticed. Only that is checked (exit 0, the line parses, its keys are there), never a figure:
timings on these shared machines are for the benchmarks to print, not for tests to assert."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.alert_latency import send_offsets
from benchmarks.router_cpu import Phase, fetching_alone_vs_routing_in_bulk

REPO = Path(__file__).resolve().parents[2]


def run_quick(benchmark: str, *args: str) -> dict[str, Any]:
    """Run `python -m benchmarks.<benchmark> --quick`; its last line of output, parsed."""
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{benchmark}", "--quick", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    lines = done.stdout.strip().splitlines()
    assert len(lines) > 1, f"no figures printed before the JSON line:\n{done.stdout}"
    result = json.loads(lines[-1])
    assert isinstance(result, dict) and result["quick"] is True, lines[-1]
    return result


def test_the_rules_benchmark_prints_each_jurisdiction_and_the_synthetic_pack() -> None:
    result = run_quick("rules")
    assert {"compile_ms", "rules", "rounds", "us_per_event", "baseline_us_per_event", "ratio", "synthetic",
            "flat"} <= result.keys()
    assert {"xian", "yunyang", "national_2021"} <= result["us_per_event"].keys()
    assert (result["us_per_event"].keys() == result["baseline_us_per_event"].keys() == result["ratio"].keys()
            == result["evaluation_us_per_event"].keys() == result["written_us_per_event"].keys())
    assert {"rules_of_another_kind", "kind", "us_per_event", "one_rule_us_per_event", "ratio"} <= result["flat"].keys()
    assert {"rules", "us_per_event", "evaluation_us_per_event", "referrals_per_event",
            "compile_ms"} <= result["synthetic"].keys()


@pytest.mark.integration
def test_the_router_benchmark_compares_the_router_service_with_raw_aiokafka(tmp_path: Path) -> None:
    result = run_quick("router", "--logdir", str(tmp_path))
    assert {"raw_msgs_per_s", "router_msgs_per_s", "ratio", "events", "rounds", "raw_passes_msgs_per_s",
            "router_passes_msgs_per_s", "raw_cpu_ms_per_event", "router_cpu_ms_per_event"} <= result.keys()
    assert (len(result["raw_passes_msgs_per_s"]), len(result["router_passes_msgs_per_s"])) == (2, 1)


@pytest.mark.integration
def test_the_alert_latency_benchmark_measures_alerts_beside_its_baseline(tmp_path: Path) -> None:
    result = run_quick("alert_latency", "--arrivals", "poisson", "--logdir", str(tmp_path))
    assert result["arrivals"] == "poisson"
    assert {"rate", "duration_s", "partitions", "reports", "alerts", "p50_ms", "p95_ms", "p99_ms", "max_ms",
            "baseline_messages", "baseline_p50_ms", "baseline_p99_ms", "window_p99_ms",
            "baseline_window_p99_ms", "broker_cpu_window_pct", "router_cpu_window_pct"} <= result.keys()
    assert result["alerts"] == result["reports"] > 0  # every report's alert came back


@pytest.mark.integration
def test_the_broker_growth_benchmark_measures_each_step_against_the_empty_partition() -> None:
    result = run_quick("broker_growth")
    assert result["fetch_max_wait_ms"] > 0 and len(result["steps"]) == 2
    for step in result["steps"]:
        assert {"batches", "ack_p50_ms", "hop_p50_ms", "hop_max_ms", "idle_poll_broker_cpu_pct",
                "hop_p50_ratio"} <= step.keys()


def test_the_step_benchmark_prints_each_situation_beside_its_baseline() -> None:
    result = run_quick("step")
    assert {"events", "rounds", "us_per_event", "baseline_us_per_event", "ratio", "messages_per_event",
            "referrals_per_event", "goal"} <= result.keys()
    assert {"missing_child_xian", "transport_clue_xx_city"} <= result["us_per_event"].keys()
    assert result["us_per_event"].keys() == result["baseline_us_per_event"].keys() == result["ratio"].keys()
    assert result["after_sleep"]["us"].keys() == result["after_sleep"]["ratio"].keys() == {"0", "1", "10", "100"}


@pytest.mark.integration
def test_the_router_cpu_benchmark_measures_each_load_beside_a_raw_worker(tmp_path: Path) -> None:
    result = run_quick("router_cpu", "--logdir", str(tmp_path))
    for kind in ("fetch", "raw", "router"):
        assert set(result[kind]) == {"idle", "lone", "20/s", "100/s", "bulk"}
        assert result[kind]["lone"]["cpu_ms_per_event_net_of_idle"] is not None
        for phase in result[kind].values():
            assert {"cpu_pct", "broker_cpu_pct", "events", "seconds", "cpu_ms_per_event", "kernel_cpu_pct",
                    "voluntary_switches_per_s", "involuntary_switches_per_s"} <= phase.keys()
            assert 0 <= phase["kernel_cpu_pct"] <= phase["cpu_pct"]
        assert result[kind]["bulk"]["events"] == result["bulk_events"]
        assert {"lone", "20/s", "100/s", "bulk"} <= result[f"{kind}_vs_bulk"].keys()
    assert {"lone", "20/s", "100/s"} == result["fetch_vs_router_bulk"].keys()


@pytest.mark.integration
def test_the_produce_benchmark_prints_each_way_of_sending_beside_fausts() -> None:
    result = run_quick("produce")
    assert {"events", "rounds", "messages_per_event", "cpu_ms_per_event", "cpu_ms_per_event_all_rounds",
            "vs_faust"} <= result.keys()
    assert result["cpu_ms_per_event"].keys() == result["vs_faust"].keys() == {"faust", "append", "lean"}


@pytest.mark.integration
def test_the_fetch_round_trip_benchmark_compares_aiokafkas_fetcher_with_the_lean_one() -> None:
    result = run_quick("fetch_round_trip")
    for variant in ("aiokafka", "lean"):
        assert {"cpu_ms_per_round_trip", "cpu_pct", "broker_cpu_pct", "median_cpu_ms_per_round_trip"} <= \
            result[variant].keys()
    assert result["ratio"] > 0
    assert {"answer_version", "aiokafka_us", "struct_us", "ratio"} <= result["decode_with_records"].keys()


def test_lone_events_are_given_net_of_an_idle_share_measured_as_zero() -> None:
    # A quiet worker can use less than /proc's 10 ms tick in the quick mode's idle window.
    lone = Phase("lone", wall=1.0, events=2, cpu=0.02, broker_cpu=0.0, idle_share=0.0).figures()
    assert lone["cpu_ms_per_event_net_of_idle"] == lone["cpu_ms_per_event"] == 10.0
    assert "cpu_ms_per_event_net_of_idle" not in Phase("100/s", 1.0, 100, 0.1, 0.0).figures()


def test_poisson_arrivals_keep_the_mean_rate_with_quiet_spells_a_steady_pace_never_has() -> None:
    steady = send_offsets(20, 60, "steady", seed=1)
    poisson = send_offsets(20, 60, "poisson", seed=1)
    assert steady == [i / 20 for i in range(1200)]
    assert poisson == send_offsets(20, 60, "poisson", seed=1) != send_offsets(20, 60, "poisson", seed=2)
    assert poisson == sorted(poisson) and poisson[0] == 0 and poisson[-1] < 60
    assert 1100 < len(poisson) < 1300
    gaps = [b - a for a, b in itertools.pairwise(poisson)]
    assert max(gaps) > 0.25  # a spell long enough for a worker to go quiet (QUIET_AFTER_S)


def test_fetching_alone_is_set_against_the_routers_bulk_figure_at_each_rate_and_for_a_lone_event() -> None:
    floor: dict[str, dict[str, Any]] = {
        "idle": {"cpu_ms_per_event": None}, "lone": {"cpu_ms_per_event": 40.0, "cpu_ms_per_event_net_of_idle": 0.9},
        "20/s": {"cpu_ms_per_event": 2.3}, "100/s": {"cpu_ms_per_event": 0.6}, "bulk": {"cpu_ms_per_event": 0.02}}
    router: dict[str, dict[str, Any]] = {"bulk": {"cpu_ms_per_event": 0.12}}
    assert fetching_alone_vs_routing_in_bulk(floor, router) == {"20/s": 19.17, "100/s": 5.0, "lone": 7.5}
    assert fetching_alone_vs_routing_in_bulk(floor, {"bulk": {"cpu_ms_per_event": None}}) == {}


def test_the_fetch_waits_model_prints_each_policy_at_each_rate() -> None:
    result = run_quick("fetch_waits")
    assert {"records", "seed", "busy_wait_ms", "idle_wait_ms", "rates"} <= result.keys()
    assert {"0.0166667", "20", "100"} <= result["rates"].keys()
    for policies in result["rates"].values():
        assert policies.keys() == {"always_busy", "fixed_tail", "no_lone_tail", "bus"}
        for outcome in policies.values():
            assert {"fetches_per_s", "fetches_per_record", "found_quiet_pct", "wait_mean_ms",
                    "wait_p99_ms"} <= outcome.keys()
