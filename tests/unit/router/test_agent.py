"""The faust agent wiring, in faust's test context (no broker): messages in, sends out."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import AsyncMock, patch

import faust
from prometheus_client import CollectorRegistry

from referral_bus.demo_events import scripted_events
from referral_bus.faust_app import make_app
from referral_bus.rules.deadlines import Deadlines
from referral_bus.rules.engine import load_rulebook
from referral_bus.services.router.agents import wire
from referral_bus.services.router.handling import Router
from referral_bus.services.router.metrics import RouterMetrics
from referral_bus.settings import KafkaSettings


async def test_agent_sends_each_referral_and_counts_it(tmp_path: Path) -> None:
    app = make_app("router-test", KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), tmp_path)
    registry = CollectorRegistry()
    wire(app, Router(load_rulebook(), Deadlines.load()), RouterMetrics(registry))
    agent = app.agents["route-events"]
    with patch.object(faust.Topic, "send", new_callable=AsyncMock) as send:
        async with agent.test_context() as ctx:
            await ctx.put(json.dumps(scripted_events()[0]).encode())
            await ctx.put(b"{broken")
    sent = [json.loads(call.kwargs["value"]) for call in send.call_args_list]
    referrals = [m for m in sent if "referral_id" in m]
    letters = [m for m in sent if "original_b64" in m]
    assert {r["agency"] for r in referrals if r["role"] == "lead"} == {"police.command_center"}
    assert [d["reason"] for d in letters] == ["invalid_json"]
    assert registry.get_sample_value("referral_bus_dead_letters_total", {"reason": "invalid_json"}) == 1
    assert registry.get_sample_value(
        "referral_bus_events_received_total",
        {"kind": "child_missing_reported", "jurisdiction": "xian", "reporter_agency": "public"}) == 1
