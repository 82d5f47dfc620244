"""The import graph keeps the layers apart: no cycles between modules, nothing below the services
imports one, and no service imports another (they meet on topics and `schemas/`); only the CLI's
composition root (`services/cli.py`) mounts them all. Imports inside functions count too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("bus", "schemas", "topics", "rules", "services")
#: The one module that may import every service: it mounts their commands on `referral-bus`.
COMPOSITION_ROOT = "services.cli"


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(module: str) -> Iterator[str]:
    """The project modules `module` imports, anywhere in its body (`from a import b` counts `a.b` when it is one)."""
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        yield from (name for name in names if name in MODULES and name != module)


GRAPH = {module: sorted(set(_imports(module))) for module in MODULES}


def test_the_graph_is_read() -> None:
    assert "services.alerts.handlers" in GRAPH["services.alerts.agents"]
    assert "bus.kafka.reader" in GRAPH["services.alerts.tables"]
    assert GRAPH[COMPOSITION_ROOT]


def test_no_cycles_between_modules() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith("services")))
def test_nothing_below_the_services_imports_one(module: str) -> None:
    assert [m for m in GRAPH[module] if m.startswith("services")] == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("services.") and m != COMPOSITION_ROOT))
def test_no_service_imports_another(module: str) -> None:
    own = module.split(".")[1]
    assert [m for m in GRAPH[module] if m.startswith("services.") and m.split(".")[1] != own] == []


def test_reading_a_topic_to_its_end_is_done_in_one_place() -> None:
    """End offsets are a floor on the local broker (tests/integration/test_regression_end_offsets.py):
    only the reader decides "caught up" from them; the lag exporter and the report's progress bar
    report them."""
    asking = {m for m, path in MODULES.items() if ".end_offsets(" in path.read_text(encoding="utf-8")}
    assert asking == {"bus.kafka.reader", "services.alerts.lag", "services.report.reader"}
