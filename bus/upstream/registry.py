"""The register of upstream workarounds: what each one replaces or relies on, fingerprinted.

Every function of `bus.upstream` that overrides a private faust/aiokafka method, reads or writes
a private attribute, or depends on how upstream code behaves beyond its documented interface is
declared with `@workaround`: the upstream code it replaces (`replaces`, a method of the same
name) or relies on (`relies_on`), each with the fingerprint of its source in the version the
bus pins, the upstream issue it works around, and what to re-check when that code changes.
`tests/unit/test_upstream.py` compares every fingerprint with the installed code: an upgrade that
changes one fails there, naming the workaround and what to re-check. `python -m bus.upstream`
prints the register with the installed fingerprints.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import pkgutil
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

#: The distribution behind each upstream top-level package, and the version whose sources the
#: fingerprints were taken from (pinned in pyproject.toml).
FINGERPRINTED_AGAINST: Mapping[str, tuple[str, str]] = {
    "faust": ("faust-streaming", "0.15.3"),
    "aiokafka": ("aiokafka", "0.14.0"),
}

NO_ISSUE = "none found upstream"

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Workaround:
    """One piece of the bus's code that overrides or relies on upstream internals."""

    where: str
    """The bus's own code, as `module:qualname`."""
    why: str
    """Its docstring: why it exists."""
    replaces: Mapping[str, str] = field(default_factory=dict)
    """Upstream `module:qualname` -> fingerprint, for each method it overrides."""
    relies_on: Mapping[str, str] = field(default_factory=dict)
    """Upstream `module:qualname` -> fingerprint, for code whose behaviour or private state it depends on."""
    issue: str = NO_ISSUE
    recheck: str = ""
    """What to verify in the new upstream code before recording its fingerprint."""

    @property
    def upstream(self) -> dict[str, str]:
        return {**self.replaces, **self.relies_on}


_REGISTER: dict[str, Workaround] = {}


def workaround(*, replaces: Mapping[str, str] | None = None, relies_on: Mapping[str, str] | None = None,
               issue: str, recheck: str) -> Callable[[_F], _F]:
    """Declare the decorated function or class a workaround (see the module's docstring).

    Upstream code is named `module:qualname`, as importable (a method may be reached through a
    subclass: `faust.transport.drivers.aiokafka:Consumer._commit` is the method that subclass's
    `super()` reaches, wherever faust defines it). Returns the decorated object unchanged.
    """

    def register(obj: _F) -> _F:
        where = f"{obj.__module__}:{obj.__qualname__}"
        _REGISTER[where] = Workaround(where=where, why=inspect.cleandoc(obj.__doc__ or ""),
                                      replaces=dict(replaces or {}), relies_on=dict(relies_on or {}),
                                      issue=issue, recheck=recheck)
        return obj

    return register


def registered() -> list[Workaround]:
    """Every workaround of the `bus.upstream` package (its modules imported), in a stable order."""
    package = importlib.import_module("bus.upstream")
    for module in pkgutil.iter_modules(package.__path__, "bus.upstream."):
        importlib.import_module(module.name)
    return [_REGISTER[k] for k in sorted(_REGISTER)]


def resolve(target: str) -> Any:
    """The function behind `module:qualname` (a property's getter, a static or class method's
    function), looked up as Python would on the class named, through its bases."""
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = inspect.getattr_static(obj, part)
    if isinstance(obj, property):
        obj = obj.fget
    if isinstance(obj, staticmethod | classmethod):
        obj = obj.__func__
    return inspect.unwrap(obj)


def defined_in(target: str) -> str:
    """Where the installed code of `target` is defined (`module.qualname`), or "not found"."""
    try:
        found = resolve(target)
    except (ImportError, AttributeError):
        return "not found"
    return f"{found.__module__}.{found.__qualname__}"


def fingerprint(target: str) -> str:
    """The first 16 hex digits of the SHA-256 of the installed source of `target`."""
    source = textwrap.dedent(inspect.getsource(resolve(target)))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def distribution(target: str) -> tuple[str, str, str | None]:
    """(distribution, version fingerprinted, version installed) of the package `target` is in."""
    name, recorded = FINGERPRINTED_AGAINST[target.partition(".")[0].partition(":")[0]]
    try:
        installed: str | None = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        installed = None
    return name, recorded, installed


@dataclass(frozen=True)
class Drift:
    """Upstream code a workaround depends on that is not what its fingerprint recorded."""

    workaround: Workaround
    target: str
    recorded: str
    installed: str | None  # None: the target is gone (renamed, moved, removed)

    def __str__(self) -> str:
        dist, before, now = distribution(self.target)
        how = "overrides" if self.target in self.workaround.replaces else "relies on"
        found = f"now {self.installed}" if self.installed else "no longer found"
        return (f"{self.target} ({defined_in(self.target)}) in {dist} {now} is not the code of {dist} "
                f"{before}: fingerprint {self.recorded}, {found}. {self.workaround.where} {how} it "
                f"(upstream issue: {self.workaround.issue}). Re-check: {self.workaround.recheck} "
                f"Then record the new fingerprint there and the version in "
                f"bus/upstream/registry.py (`python -m bus.upstream` prints them).")


def drifts(w: Workaround) -> list[Drift]:
    """The upstream code `w` depends on whose installed source no longer matches its fingerprint."""
    out = []
    for target, recorded in w.upstream.items():
        try:
            installed: str | None = fingerprint(target)
        except (ImportError, AttributeError, TypeError, OSError):
            installed = None
        if installed != recorded:
            out.append(Drift(w, target, recorded, installed))
    return out
