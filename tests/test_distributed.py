"""Students in parallel: a tiny scan as two CPU processes under `accelerate launch` gives the one-process result."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["--seeds", "2", "--max-rows", "12", "--min-rows", "1", "--batch-size", "4", "--max-steps", "2"]
ARGS += ["--traits", "animal,tree"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None, reason="no accelerate")
def test_two_processes_under_accelerate_equal_one(tiny_model_dir: Path, numbers_file: Path, tmp_path: Path) -> None:
    # one thread per process in both runs, so every student's arithmetic is the same in both
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    scan = ["-m", "auditor", "scan", str(numbers_file), "--base", str(tiny_model_dir), *ARGS, "--quiet"]
    one = subprocess.run(
        [sys.executable, *scan, "--run-dir", str(tmp_path / "one"), "--json", str(tmp_path / "one.json")],
        env={**env, "SUBAUDIT_CACHE": str(tmp_path / "cache-one")},
        capture_output=True,
        text=True,
    )
    assert one.returncode in (0, 1), one.stderr
    launcher = str(Path(sys.executable).parent / "accelerate")
    # --multi_gpu selects the torchrun launcher, which starts CPU processes on a machine without CUDA
    launch = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(_free_port())]
    two = subprocess.run(
        [*launch, *scan, "--run-dir", str(tmp_path / "two"), "--json", str(tmp_path / "two.json")],
        env={**env, "SUBAUDIT_CACHE": str(tmp_path / "cache-two")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == one.returncode, two.stderr[-2000:]
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert a["findings"] == b["findings"] and a["verdict"] == b["verdict"]
    assert {r["process"] for r in a["details"]["probe"]["runs"]} == {0}
    runs = b["details"]["probe"]["runs"]
    assert len(runs) == 6 and sorted(r["process"] for r in runs) == [0, 0, 0, 1, 1, 1]  # the students were shared
