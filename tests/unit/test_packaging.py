"""The repository's folders install as one import package; nothing is left out of the wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path


def test_every_python_folder_is_a_declared_package(repo_root: Path) -> None:
    conf = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping: dict[str, str] = conf["package-dir"]
    declared = set(conf["packages"])
    found = set()
    for package, folder in mapping.items():
        for init in (repo_root / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(repo_root / folder)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    # Nested mappings (referral_bus.services inside referral_bus) are found from their own folder.
    assert found - declared == set(), "add these to [tool.setuptools] packages"
