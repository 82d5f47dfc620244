"""`python -m referral_bus.services.broadcast`: the same as `referral-bus broadcast`."""

from __future__ import annotations

from referral_bus import logging as bus_logging
from referral_bus.services.broadcast.app import run

if __name__ == "__main__":
    bus_logging.configure(json=True)
    run()
