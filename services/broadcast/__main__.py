"""`python -m services.broadcast`: the same as `referral-bus broadcast`."""

from __future__ import annotations

from bus import logging as bus_logging
from services.broadcast.app import run

if __name__ == "__main__":
    bus_logging.configure(json=True)
    run()
