"""benchmarks/fuzz.py --quick in the suite, so it cannot break unnoticed (it asserts no timing).

What it must show whatever the machine's speed: every hostile request answered in the error
shape (no hang), every hostile inbound message a dead letter or routed, every hostile answer
applied or refused with its reason, no service exited, and no sender text in an answer or a log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_fuzz_benchmark_quick() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.fuzz", "--quick"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["hostile_requests"] == 400 and summary["hostile_messages"] >= 390, summary
    assert (summary["crashes"], summary["hangs"], summary["unaccounted"]) == (0, 0, 0), summary
    assert summary["hostile_answers"] >= 390 and summary["answers_unaccounted"] == 0, summary
    assert {"not_entitled", "no_agency", "invalid_answer", "unknown_id"} <= summary["answer_outcomes"].keys(), summary
    assert (summary["echoed_answers"], summary["echoed_in_logs"]) == (0, 0), summary
    assert "not_the_error_shape" not in summary["http_statuses"], summary
    assert summary["auth_attack"]["statuses"].get("429", 0) > 0, summary
    assert {summary["slow_requests"]["incomplete_head_answer"], summary["slow_requests"]["incomplete_body_answer"]} \
        == {"408"}, summary
