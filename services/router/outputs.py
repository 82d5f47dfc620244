"""Outputs of a routed event beside its referrals. Each is a pure `Emitter`; services add theirs here."""

from __future__ import annotations

from referral_bus.rules.deadlines import Deadlines
from referral_bus.services.router.handling import Emitter


def emitters(deadlines: Deadlines) -> tuple[Emitter, ...]:
    """Every emitter the router runs, in order."""
    return ()
