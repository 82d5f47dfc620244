"""The repository's top-level folders install as import packages of the same names; nothing is left out of the wheel."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

PACKAGES = ("bus", "schemas", "topics", "services", "rules")
#: Importable from the repository (the editable install puts it on sys.path), not shipped.
DEVELOPMENT_PACKAGES = ("benchmarks",)


def test_no_other_installed_distribution_claims_the_bus_package_names() -> None:
    # The folders install under their own short names (README, "Layout"): an application in its own
    # environment, so a collision with another distribution would show here first.
    owners = importlib.metadata.packages_distributions()
    for name in PACKAGES + DEVELOPMENT_PACKAGES:
        assert set(owners.get(name, ["referral-bus"])) == {"referral-bus"}, name


def test_the_wheel_ships_the_code_and_the_data_it_reads(repo_root: Path, tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(repo_root)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("referral_bus-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in PACKAGES:
        for path in (repo_root / folder).rglob("*"):
            if "__pycache__" in path.parts or path.is_dir():
                continue
            inside = str(path.relative_to(repo_root))
            assert inside in names, f"{inside} is not in the wheel"
