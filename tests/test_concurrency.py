"""One cache, many processes: scans started together share the control cache and a run folder through
:func:`auditor.io.cache_lock`, and give what one scan alone gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MINI_YAML, number_rows, write_jsonl
from tests.test_resume import stable

ROOT = Path(__file__).resolve().parent.parent
#: Processes started at once against one cache.
PROCESSES = 4


def scan_command(data: Path, model: Path, battery: Path, out: Path, run_dir: Path | None = None) -> list[str]:
    """A tiny scan as a separate process: 12 rows, one seed, one optimiser step per student, no null arm."""
    cmd = [sys.executable, "-m", "auditor", "scan", str(data), "--base", str(model), "--traits", str(battery)]
    cmd += ["--seeds", "1", "--max-rows", "12", "--min-rows", "1", "--batch-size", "4", "--max-steps", "1"]
    cmd += ["--no-null-arm"]
    cmd += ["--device", "cpu", "--quiet", "--json", str(out)]
    return cmd + (["--run-dir", str(run_dir)] if run_dir else [])


def env_with(cache: Path) -> dict[str, str]:
    return {**os.environ, "SUBAUDIT_CACHE": str(cache), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def control_file(cache: Path) -> dict:
    files = sorted((cache / "controls").glob("*.json"))
    assert len(files) == 1, files  # one control draw, written once
    return json.loads(files[0].read_text())


def test_scans_in_parallel_share_one_cache_and_match_a_scan_alone(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "numbers.jsonl", number_rows(16))
    battery = tmp_path / "mini.yaml"
    battery.write_text(MINI_YAML)

    alone = tmp_path / "alone.json"
    res = subprocess.run(
        scan_command(data, tiny_model_dir, battery, alone, tmp_path / "alone-run"),
        env=env_with(tmp_path / "cache-alone"),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode in (0, 1), res.stderr
    reference = json.loads(alone.read_text())

    # all processes share one cache: they contend for the same control draw; the first three also share the run
    # folder in the cache (same inputs, same key), so they contend for the manifest and every student's stage
    shared = tmp_path / "cache-shared"
    outs = [tmp_path / f"p{i}.json" for i in range(PROCESSES)]
    own_run = tmp_path / "own-run"
    procs = [
        subprocess.Popen(
            scan_command(data, tiny_model_dir, battery, out, own_run if i == PROCESSES - 1 else None),
            env=env_with(shared),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for i, out in enumerate(outs)
    ]
    finished = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for rc, _stdout, stderr in finished:
        assert rc == res.returncode, stderr

    docs = [json.loads(out.read_text()) for out in outs]
    # exactly one process drew the control rows; the others waited for its cache file and read it
    assert sorted(d["control"]["from_cache"] for d in docs) == [False] + [True] * (PROCESSES - 1)
    assert len({d["control"]["cache"] for d in docs}) == 1

    volatile = frozenset({"command"})  # the --json path is part of the command line
    for doc in docs:
        assert stable(doc, volatile) == stable(reference, volatile)
        assert doc["verdict"] == reference["verdict"]
        assert _shifts(doc) == _shifts(reference) and len(_shifts(doc)) == 4  # the mini battery's four options

    # the control rows themselves: the shared cache holds the very rows the scan alone drew
    assert control_file(shared)["completions"] == control_file(tmp_path / "cache-alone")["completions"]

    # the shared run folder: one manifest (finished), one adapter and one score file per student, no temp files
    runs = [p for p in (shared / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1
    run = runs[0]
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
    assert sorted(p.name.split("-")[0] for p in (run / "adapters").iterdir()) == ["control", "dataset"]
    assert sorted(p.name.split("-")[0] for p in (run / "scores").iterdir()) == ["base.json", "control", "dataset"]
    assert not [p for p in shared.rglob("*") if p.name.endswith(".tmp")]
    # the process with its own run folder trained its own students, with the same result
    students = sorted(p.name for p in (run / "adapters").iterdir())
    assert sorted(p.name for p in (own_run / "adapters").iterdir()) == students


def _shifts(doc: dict) -> list[tuple[str, str, float, float, float]]:
    """Each finding's option, shift and interval, in a fixed order."""
    return sorted((f["battery"], f["option"], f["shift"], f["ci_low"], f["ci_high"]) for f in doc["findings"])


HOLD = """
import sys
from auditor.io import cache_lock
lock = cache_lock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.read()  # until the test closes stdin or kills this process
"""


def _holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_cache_lock_blocks_other_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    from filelock import Timeout

    from auditor.io import cache_lock

    target = tmp_path / "controls" / "abc.json"
    holder = _holder(target)
    try:
        with pytest.raises(Timeout):
            cache_lock(target).acquire(blocking=False)  # another process holds it
        holder.send_signal(signal.SIGKILL)  # killed while holding the lock: no cleanup of its own
        holder.wait(timeout=30)
        assert (tmp_path / "controls" / "abc.json.lock").exists()  # the lock file is left behind ...
        lock = cache_lock(target)
        lock.acquire(blocking=False)  # ... and blocks nobody: the kernel released the dead process's lock
        try:
            assert lock.is_locked
            with cache_lock(target):  # re-entrant in one process (the same lock object)
                assert cache_lock(target) is lock
        finally:
            lock.release()
        assert not lock.is_locked
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
