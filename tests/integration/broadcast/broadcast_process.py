"""The broadcast service as a child process (imported by conftest and the tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CLI = str(Path(sys.executable).with_name("referral-bus"))

#: The 团圆 schedule shortened by configuration: 100 km for 6 s, 200 until 12 s, 300 until 18 s, then 500.
SHORT_SCHEDULE = [{"within": 6, "radius_km": 100}, {"within": 12, "radius_km": 200},
                  {"within": 18, "radius_km": 300}, {"within": None, "radius_km": 500}]


@dataclass
class BroadcastProcess:
    """One `referral-bus broadcast` process; `kill()` then `start()` restarts it with the same ports and config."""

    env: dict[str, str]
    log_path: Path
    http_port: int
    metrics_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> BroadcastProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen([CLI, "broadcast"], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, nothing flushed."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
