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


def test_the_wheel_ships_the_data_the_code_reads(repo_root: Path, tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(repo_root)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("referral_bus-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pattern in [("rules/catalog", "*.yaml"), ("rules/packs", "*.yaml"), ("schemas/json", "*.json")]:
        for path in (repo_root / folder).glob(pattern):
            inside = "referral_bus/" + str(path.relative_to(repo_root))
            assert inside in names, f"{inside} is not in the wheel"
    assert "referral_bus/services/router/agents.py" in names
