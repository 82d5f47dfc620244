"""docker-compose.yml: valid against the Compose Specification, and consistent with the repository.

No Docker engine is needed: the file is read as data. The schema is vendored (see
compose-spec.README.md); everything else is checked against files in the repository.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .deploy_support import DEPLOY, REPO, contract

COMPOSE_FILE = REPO / "docker-compose.yml"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"

# The contract between the compose file and the CLI: `referral-bus` subcommands a service may run.
SUBCOMMANDS: frozenset[tuple[str, ...]] = frozenset({
    ("topics", "create"),
    ("router",),
    ("alerts",),
    ("broadcast",),
    ("intake",),
    ("console",),
})
PROJECT_SERVICES = {"topics", "intake", "router", "alerts", "broadcast", "console"}

_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's `${VAR:-default}`, with the environment of this test run."""
    return _VARIABLE.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    svc: dict[str, dict[str, Any]] = compose()["services"]
    return svc


def project_services() -> dict[str, dict[str, Any]]:
    """Services built from deploy/Dockerfile (they run `referral-bus`)."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def test_vendored_schema_is_unchanged() -> None:
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft201909Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_catches_a_broken_file() -> None:
    """The validator really validates: an unknown key and a bad condition are refused."""
    schema = json.loads(SCHEMA_FILE.read_text())
    broken = copy.deepcopy(compose())
    broken["services"]["router"]["comand"] = ["router"]
    broken["services"]["router"]["depends_on"]["kafka"]["condition"] = "service_ready"
    messages = [e.message for e in jsonschema.Draft201909Validator(schema).iter_errors(broken)]
    assert any("comand" in m for m in messages)
    assert len(messages) >= 2


def test_the_production_shape() -> None:
    assert set(services()) == PROJECT_SERVICES | {"kafka", "prometheus", "grafana"}
    assert project_services().keys() == PROJECT_SERVICES
    kafka = services()["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    for name, svc in project_services().items():
        assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name


def test_build_contexts_and_dockerfiles_exist() -> None:
    for name, svc in project_services().items():
        context = REPO / svc["build"]["context"]
        dockerfile = context / svc["build"]["dockerfile"]
        assert context.is_dir(), f"{name}: no build context {context}"
        assert dockerfile.is_file(), f"{name}: no Dockerfile {dockerfile}"


def test_dockerfile_copies_existing_paths_and_runs_referral_bus() -> None:
    dockerfile = REPO / "deploy" / "Dockerfile"
    instructions = dockerfile_instructions(dockerfile)
    froms = [rest for op, rest in instructions if op == "FROM"]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    for op, rest in instructions:
        if op == "COPY" and "--from=" not in rest:
            *sources, _dest = shlex.split(rest)
            for source in sources:
                assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
    entrypoints = [json.loads(rest) for op, rest in instructions if op == "ENTRYPOINT"]
    assert entrypoints[-1] == ["referral-bus"]
    ignore = dockerfile.with_name("Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignore and ".git" in ignore


def _bind_mounts() -> list[tuple[str, str, str]]:
    mounts = []
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            mounts.append((name, source, target))
    return mounts


def test_mounted_files_and_named_volumes_exist() -> None:
    declared_volumes = set(compose().get("volumes") or {})
    for name, source, target in _bind_mounts():
        if source.startswith((".", "/")):
            assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
        else:
            assert source in declared_volumes, f"{name} uses volume {source}, not declared"
        assert target.startswith("/"), f"{name}: mount target {target} must be absolute"
    for secret, spec in compose().get("secrets", {}).items():
        path = REPO / interpolate(spec["file"])
        assert path.is_file(), f"secret {secret}: {path} does not exist"
    for name, svc in services().items():
        for secret in svc.get("secrets", []):
            assert secret in compose()["secrets"], f"{name} uses undeclared secret {secret}"


def test_monitoring_mounts_the_deploy_files() -> None:
    mounts = {(name, target): REPO / source for name, source, target in _bind_mounts() if source.startswith(".")}
    assert mounts[("prometheus", "/etc/prometheus/prometheus.yml")] == REPO / "deploy/prometheus/prometheus.yml"
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:  # relative to the config file, inside the container too
        assert mounts[("prometheus", f"/etc/prometheus/{rule_file}")].resolve() == (
            DEPLOY / "prometheus" / rule_file
        ).resolve()
    grafana = {target for (name, target) in mounts if name == "grafana"}
    assert {"/etc/grafana/provisioning/datasources", "/etc/grafana/provisioning/dashboards"} <= grafana


def _published(port: str | int | dict[str, Any]) -> str:
    if isinstance(port, dict):
        return str(port["published"])
    parts = str(port).split(":")
    return parts[-2] if len(parts) >= 2 else parts[0]


def test_ports_are_unique() -> None:
    published = [(name, _published(p)) for name, svc in services().items() for p in svc.get("ports", [])]
    host_ports = [port for _, port in published]
    assert len(host_ports) == len(set(host_ports)), f"host ports published twice: {published}"
    # Inside the compose network every service has its own address; within a service the
    # HTTP servers it starts must not collide.
    for name, svc in project_services().items():
        env = svc["environment"]
        ports = [v for k, v in env.items() if k.endswith("_PORT")]
        assert len(ports) == len(set(ports)), f"{name} binds one port twice: {ports}"


def test_metrics_ports_match_prometheus_and_healthchecks() -> None:
    for job, spec in contract()["jobs"].items():
        svc = services()[spec["service"]]
        port = str(spec["port"])
        env_ports = {v for k, v in svc["environment"].items() if k.endswith("_METRICS_PORT")}
        assert env_ports == {port}, f"{job}: service sets ports {env_ports}, Prometheus scrapes {port}"
        assert f":{port}/metrics" in " ".join(svc["healthcheck"]["test"]), f"{job}: healthcheck port"


def test_metrics_listen_on_loopback_unless_compose_opens_them_to_prometheus() -> None:
    # Each service's metrics listener defaults to 127.0.0.1 (they name agencies and
    # jurisdictions); in Compose, Prometheus scrapes over the network, so every scraped service
    # opens its listener to the compose network, and none publishes it on the host.
    from services.alerts.settings import AlertsSettings
    from services.broadcast.settings import BroadcastSettings
    from services.intake.settings import IntakeSettings
    from services.router.settings import RouterSettings

    for settings in (RouterSettings(), AlertsSettings(), BroadcastSettings(), IntakeSettings()):
        assert settings.metrics_host == "127.0.0.1", type(settings).__name__
    for job, spec in contract()["jobs"].items():
        svc = services()[spec["service"]]
        hosts = {v for k, v in svc["environment"].items() if k.endswith("_METRICS_HOST")}
        assert hosts == {"0.0.0.0"}, f"{job}: Prometheus cannot scrape a loopback listener"
        published = {_published(p) for p in svc.get("ports", [])}
        assert str(spec["port"]) not in published, f"{job}: metrics published on the host"


def test_each_service_command_is_a_referral_bus_subcommand() -> None:
    for name, svc in project_services().items():
        command = svc["command"]
        assert isinstance(command, list), f"{name}: write the command as a list"
        assert any(tuple(command[: len(sub)]) == sub for sub in SUBCOMMANDS), (
            f"{name} runs `referral-bus {' '.join(command)}`, not one of {sorted(SUBCOMMANDS)}"
        )
    used = {tuple(svc["command"]) for svc in project_services().values()}
    assert used == SUBCOMMANDS, "every contract subcommand runs in exactly the shape listed"


def test_healthchecks_and_depends_on_conditions() -> None:
    for name, svc in services().items():
        if name != "topics":
            assert "healthcheck" in svc, f"{name} needs a healthcheck"
        for dependency, spec in svc.get("depends_on", {}).items():
            target = services()[dependency]
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in target, f"{name} waits for {dependency} healthy: it has no healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} is one-shot: restart must be 'no'"
    for name in PROJECT_SERVICES - {"topics"}:
        assert services()[name]["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "topics": {"condition": "service_completed_successfully"},
        }, name
    assert services()["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}


# Run in a child process: importing the CLI imports every service (faust included).
_LIST_COMMANDS = """
import json, typer
from services import cli
def walk(group, prefix=()):
    for name, command in getattr(group, "commands", {}).items():
        yield [*prefix, name]
        yield from walk(command, (*prefix, name))
print(json.dumps(list(walk(typer.main.get_command(cli.app)))))
"""


def test_contract_subcommands_exist_in_the_cli() -> None:
    """Each contract subcommand is registered on the `referral-bus` app (the console entry point)."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["referral-bus"] == "services.cli:main"
    proc = subprocess.run([sys.executable, "-c", _LIST_COMMANDS], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    commands = {tuple(c) for c in json.loads(proc.stdout.strip().splitlines()[-1])}
    missing = SUBCOMMANDS - commands
    assert not missing, f"referral-bus lacks the subcommands docker-compose.yml runs: {sorted(missing)}"
