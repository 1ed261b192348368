"""The wheel carries every data file the package reads at run time (trait batteries, decoys, profiles, JSON schemas,
chat templates): a file left out of ``[tool.setuptools.package-data]`` works in a clone and fails after
``pip install``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tracked_data_files() -> set[str]:
    """Every file git tracks under ``auditor/`` that is not Python source or a dotfile (``.gitkeep``)."""
    out = subprocess.run(["git", "ls-files", "auditor"], cwd=ROOT, capture_output=True, text=True, check=True)
    return {name for name in out.stdout.split() if not name.endswith(".py") and not Path(name).name.startswith(".")}


def test_the_wheel_carries_every_data_file(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "auditor", source / "auditor", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source, capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("*.whl")
    carried = set(zipfile.ZipFile(wheel).namelist())
    data = _tracked_data_files()
    assert {"auditor/templates/llama3.jinja", "auditor/templates/gemma.jinja"} <= data
    assert data - carried == set()
