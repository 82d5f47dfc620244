"""The faust/aiokafka workarounds: all in `bus/upstream/`, each failing here when the upstream
code it overrides or relies on changes (an upgrade), naming what to re-check."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.upstream.registry import FINGERPRINTED_AGAINST, Workaround, drifts, fingerprint, registered, resolve

REPO = Path(__file__).resolve().parents[2]
WORKAROUNDS = registered()
UPSTREAM_PACKAGES = ("faust", "aiokafka", "mode")
#: The bus's own code, which reaches faust and aiokafka only through `bus/upstream/`.
CHECKED_PACKAGES = ("bus", "services", "schemas", "topics", "rules", "benchmarks")


@pytest.mark.parametrize("workaround", WORKAROUNDS, ids=[w.where for w in WORKAROUNDS])
def test_the_upstream_code_a_workaround_depends_on_is_what_it_was_written_against(workaround: Workaround) -> None:
    changed = drifts(workaround)
    if changed:
        pytest.fail("\n".join(str(d) for d in changed), pytrace=False)


def test_the_fingerprints_were_taken_from_the_installed_versions() -> None:
    for package, (distribution, version) in FINGERPRINTED_AGAINST.items():
        installed = importlib.metadata.version(distribution)
        assert installed == version, (
            f"{distribution} {installed} is installed; the fingerprints in bus/upstream/ were taken from "
            f"{version}. Run `python -m bus.upstream`, re-check every workaround whose upstream code "
            f"changed, then record the version in bus/upstream/registry.py ({package!r}).")


def test_a_changed_or_vanished_upstream_method_is_reported_with_what_to_recheck() -> None:
    target = "faust.transport.consumer:Consumer._drain_messages"
    stale = Workaround(where="tests:stale", why="a test", replaces={target: "0123456789abcdef"},
                       relies_on={"faust.transport.consumer:Consumer._gone": "fedcba9876543210"},
                       issue="example/issue#1", recheck="the copied loop still matches.")
    changed, gone = drifts(stale)
    assert (changed.target, changed.installed) == (target, fingerprint(target))
    assert gone.installed is None
    message = str(changed)
    for expected in (target, "faust.transport.consumer.Consumer._drain_messages", "faust-streaming 0.15.3",
                     "0123456789abcdef", fingerprint(target), "tests:stale overrides it", "example/issue#1",
                     "Re-check: the copied loop still matches."):
        assert expected in message
    assert "no longer found" in str(gone) and "relies on it" in str(gone)


def test_every_override_replaces_an_upstream_method_of_its_own_name_in_a_base_class() -> None:
    for w in WORKAROUNDS:
        assert w.why and w.recheck and w.issue, f"{w.where}: say why (docstring), what to re-check, and the issue"
        module, _, qualname = w.where.partition(":")
        owner_name, _, name = qualname.rpartition(".")
        for target in w.replaces:
            assert target.rpartition(".")[2] == name, f"{w.where} replaces {target}: not the same method"
            owner = getattr(importlib.import_module(module), owner_name)
            upstream_class = resolve(target.rpartition(".")[0])
            assert issubclass(owner, upstream_class), f"{w.where} does not override {target}"


def _modules() -> Iterator[tuple[str, Path]]:
    for package in CHECKED_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO)
            if relative.parts[:2] == ("bus", "upstream"):
                continue
            yield ".".join(relative.with_suffix("").parts).removesuffix(".__init__"), path


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_upstream(cls: type) -> bool:
    return cls.__module__.partition(".")[0] in UPSTREAM_PACKAGES


def _upstream_privates(cls: type) -> set[str]:
    """The private methods and attributes of the faust/aiokafka/mode classes among `cls`'s bases
    (those their code assigns on `self` included)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if not _is_upstream(klass):
            continue
        names |= {name for name in vars(klass) if _private(name)}
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        names |= {node.attr for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                  and isinstance(node.value, ast.Name) and node.value.id == "self" and _private(node.attr)}
    return names


def _violations(module_name: str, path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = path.relative_to(REPO)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            yield f"{where}:{node.lineno}: reads or writes `{ast.unparse(node)}`"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) > 1
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _private(node.args[1].value)):
            yield f"{where}:{node.lineno}: {node.func.id} of {node.args[1].value!r}"
        elif (isinstance(node, ast.ImportFrom) and (node.module or "").partition(".")[0] in UPSTREAM_PACKAGES
              and any(_private(alias.name) for alias in node.names)):
            yield f"{where}:{node.lineno}: imports a private name from {node.module}"
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(importlib.import_module(module_name), node.name, None)
        if not isinstance(cls, type) or not any(_is_upstream(base) for base in cls.__mro__[1:]):
            continue
        upstream = _upstream_privates(cls)
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name in upstream:
                yield f"{where}:{item.lineno}: {cls.__name__}.{item.name} overrides a private upstream method"
        for sub in ast.walk(node):
            if (isinstance(sub, ast.Attribute) and sub.attr in upstream and isinstance(sub.value, ast.Name)
                    and sub.value.id == "self"):
                yield f"{where}:{sub.lineno}: {cls.__name__} uses the upstream private `self.{sub.attr}`"


def test_no_code_outside_bus_upstream_overrides_or_touches_faust_or_aiokafka_internals() -> None:
    found = [v for module_name, path in _modules() for v in _violations(module_name, path)]
    assert not found, ("Private upstream code is reached outside bus/upstream/ (move it there, declared "
                       "with @workaround):\n" + "\n".join(found))


def test_the_boundary_check_finds_an_override_and_a_private_attribute_outside_bus_upstream(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "bus"
    package.mkdir()
    source = ("from faust.transport.drivers import aiokafka as faust_aiokafka\n\n\n"
              "class Consumer(faust_aiokafka.Consumer):\n"
              "    async def _commit(self, offsets):\n"
              "        self._n_acked = 0\n"
              "        return await super()._commit(offsets)\n\n\n"
              "def wait(consumer):\n"
              "    return getattr(consumer, '_fetcher', None)._fetch_max_wait_ms\n")
    (package / "leaky.py").write_text(source)
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    spec = importlib.util.spec_from_file_location("leaky_module", package / "leaky.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "leaky_module", module)
    found = "\n".join(_violations("leaky_module", package / "leaky.py"))
    for expected in ("super()._commit", "getattr of '_fetcher'", "._fetch_max_wait_ms",
                     "Consumer._commit overrides a private upstream method", "upstream private `self._n_acked`"):
        assert expected in found, found
