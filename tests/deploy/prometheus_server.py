"""A real Prometheus server for integration tests.

Starts Debian's `prometheus` binary on a free 127.0.0.1 port with a generated config that
scrapes the given targets every second, in a temporary storage directory, waits for
`/-/ready`, and queries it through the HTTP API:

    with PrometheusServer({"router": ["127.0.0.1:9101"]}) as prom:
        prom.wait_for('referral_bus_referrals_total', lambda r: r != [])
        prom.query('sum(referral_bus_referrals_total)')

Pass `rule_files` (e.g. deploy/prometheus/rules.yml) to have Prometheus evaluate alert rules,
and read them back with `alerts()`. The files are copied with each group's `interval` removed,
so every group is evaluated every second like the scrapes (a test does not wait 30 s).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from bus.local_broker import die_with_parent

PROMETHEUS = "prometheus"


class PrometheusError(RuntimeError):
    """Prometheus did not start, or an API call failed."""


def prometheus_binary() -> str | None:
    """The path of the `prometheus` binary, or None when it is not installed."""
    return shutil.which(PROMETHEUS)


def free_port() -> int:
    """A port free on 127.0.0.1 right now (another process may still take it: callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """Context manager around one `prometheus` process; see the module docstring."""

    def __init__(
        self,
        targets: Mapping[str, Sequence[str]],
        *,
        rule_files: Sequence[Path] = (),
        scrape_interval: str = "1s",
        start_timeout: float = 20.0,
    ) -> None:
        self.targets = {job: list(addrs) for job, addrs in targets.items()}
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.scrape_interval = scrape_interval
        self.start_timeout = start_timeout
        self.port = 0
        self.config_file = Path()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def config(self) -> dict[str, Any]:
        """The generated prometheus.yml, as data."""
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "rule_files": [f"rules-{i}.yml" for i in range(len(self.rule_files))],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": addrs}]}
                for job, addrs in self.targets.items()
            ],
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PrometheusServer:
        binary = prometheus_binary()
        if binary is None:
            raise PrometheusError("prometheus is not installed (deploy/install-prometheus.sh)")
        self._tmp = tempfile.TemporaryDirectory(prefix="referral-bus-prometheus-")
        tmp = Path(self._tmp.name)
        self.config_file = config_file = tmp / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        for i, rule_file in enumerate(self.rule_files):
            rules = yaml.safe_load(rule_file.read_text())
            for group in rules.get("groups", []):
                group.pop("interval", None)
            (tmp / f"rules-{i}.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        log = tmp / "prometheus.log"
        # A free port can be taken between choosing it and prometheus binding it: retry.
        for _attempt in range(3):
            self.port = free_port()
            with log.open("wb") as log_out:
                self._proc = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config_file}",
                        f"--storage.tsdb.path={tmp / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--storage.tsdb.retention.time=1h",
                        "--log.level=warn",
                    ],
                    stdout=log_out,
                    stderr=subprocess.STDOUT,
                    cwd=tmp,
                    # A test run killed outright (timeout, ^C twice) leaves no server behind.
                    preexec_fn=die_with_parent,
                )
            if self._wait_ready(log):
                self._client = httpx.Client(base_url=self.url, timeout=5.0)
                return self
        self.stop()
        raise PrometheusError(f"prometheus did not start:\n{log.read_text()[-4000:]}")

    def _wait_ready(self, log: Path) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                if b"address already in use" in log.read_bytes():
                    return False
                raise PrometheusError(
                    f"prometheus exited with {self._proc.returncode}:\n{log.read_text()[-4000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return True
            time.sleep(0.1)
        raise PrometheusError(f"prometheus not ready after {self.start_timeout}s")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- HTTP API ----------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        if self._client is None:
            raise PrometheusError("prometheus is not running")
        response = self._client.get(path, params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"GET {path} {params}: {response.status_code} {body}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query: the API's `result` list ({"metric": {...}, "value": [ts, "v"]} each)."""
        data = self._get("/api/v1/query", {"query": promql})
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (`/api/v1/alerts`)."""
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return alerts

    def targets_health(self) -> dict[str, str]:
        """`{scrape_url: health}` of the active targets."""
        data = self._get("/api/v1/targets")
        return {t["scrapeUrl"]: t["health"] for t in data["activeTargets"]}

    def wait_for(
        self,
        read: Callable[[], Any] | str,
        until: Callable[[Any], bool] = bool,
        *,
        timeout: float = 15.0,
        interval: float = 0.25,
    ) -> Any:
        """Poll `read` (a callable, or a PromQL string for `query`) until `until(result)`.

        Scrapes and rule evaluations are asynchronous: tests wait for a result, never sleep.
        """
        reader: Callable[[], Any] = (lambda: self.query(read)) if isinstance(read, str) else read
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            last = reader()
            if until(last):
                return last
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met after {timeout}s; last result: {last!r}")
            time.sleep(interval)


@contextlib.contextmanager
def prometheus_server(
    targets: Mapping[str, Sequence[str]], *, rule_files: Sequence[Path] = ()
) -> Iterator[PrometheusServer]:
    """`with prometheus_server({...}) as prom:` — the functional spelling of PrometheusServer."""
    with PrometheusServer(targets, rule_files=rule_files) as server:
        yield server


def sample_value(result: list[dict[str, Any]]) -> float:
    """The value of a one-sample instant-query result."""
    if len(result) != 1:
        raise AssertionError(f"expected one sample, got {result!r}")
    return float(result[0]["value"][1])
