"""Killed at any moment (#23): a tiny scan is killed with SIGKILL at random moments spread over every stage, then run
again with the same command; the rerun must give the uninterrupted run's result. Each scan is a separate process
forked from a zygote that imported torch once (``tests/kill_zygote.py``), so the harness stays fast.

Where to kill is measured, not guessed: one uninterrupted run is watched and every file the scan writes (the
fingerprint memo, the manifest, each control draw, each stage's scores, adapter files and readouts, the JSON
report) marks the end of a stage. A trial waits for a stage's first file, then kills after a seeded random delay
inside that stage's measured length (sooner if the next stage's file appears first); the first stage (start-up,
data, loading the base) is timed from the process start, the last one runs to the process's exit.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import MINI_YAML, number_rows, write_jsonl
from tests.test_resume import stable

ROOT = Path(__file__).resolve().parent.parent
SEED = 23
#: Kill trials in each measured stage (about 20 stages: about 40 trials).
TRIALS_PER_STAGE = 2
#: How often the harness looks for new files (seconds).
POLL_S = 0.004
#: Files that mark no stage: locks, temp files of atomic writes, and the child's own output.
IGNORED = re.compile(r"(\.lock|\.tmp|\.log)$")


class Zygote:
    """The zygote process (``tests/kill_zygote.py``): ``start`` forks a ``subaudit`` command, ``ended`` says
    whether it exited (its code), ``wait`` waits for that."""

    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.kill_zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            cwd=ROOT,
            env=env,
        )
        self.buffer = b""
        assert self._line(timeout=300) == "ready"

    def _line(self, timeout: float | None) -> str | None:
        """The zygote's next line, or ``None`` when none came within ``timeout`` seconds."""
        assert self.proc.stdout is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            assert chunk, "the zygote died"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def start(self, argv: list[str], cache: Path, log: Path) -> int:
        assert self.proc.stdin is not None
        log.parent.mkdir(parents=True, exist_ok=True)
        request = {"argv": argv, "cache": str(cache), "log": str(log)}
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        line = self._line(timeout=60)
        assert line and line.startswith("pid "), line
        return int(line.split()[1])

    def ended(self) -> int | None:
        line = self._line(timeout=0)
        return None if line is None else int(line.split()[1])

    def wait(self, timeout: float = 300) -> int:
        line = self._line(timeout=timeout)
        assert line and line.startswith("exit "), f"no exit within {timeout} s"
        return int(line.split()[1])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def zygote() -> Zygote:
    z = Zygote()
    yield z
    z.close()


@dataclass
class Inputs:
    data: Path
    model: Path
    battery: Path


def scan_argv(inputs: Inputs, folder: Path) -> list[str]:
    """A tiny scan writing its JSON to ``folder``: 12 rows, one seed of three students (dataset, control, null arm,
    each one optimiser step) with their open-vocabulary readouts."""
    argv = ["scan", str(inputs.data), "--base", str(inputs.model), "--traits", str(inputs.battery)]
    argv += ["--seeds", "1", "--max-rows", "12", "--min-rows", "1", "--batch-size", "4", "--max-steps", "1"]
    argv += ["--null-arm"]
    return argv + ["--device", "cpu", "--quiet", "--json", str(folder / "out.json")]


def files(folder: Path) -> set[str]:
    """Every file under ``folder`` that marks a stage, relative to it."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not IGNORED.search(p.name)}


@dataclass
class Watched:
    """A run watched to its end: exit code, its log, and when each file first appeared (seconds from its start)."""

    code: int
    log: str
    appeared: dict[str, float]
    seconds: float


def watch(zygote: Zygote, inputs: Inputs, folder: Path) -> Watched:
    """Run the scan in ``folder`` to its end, noting when each file first appeared."""
    start = time.monotonic()
    zygote.start(scan_argv(inputs, folder), folder / "cache", folder / "run.log")
    appeared: dict[str, float] = {}
    while (code := zygote.ended()) is None:
        now = time.monotonic() - start
        for name in files(folder) - appeared.keys():
            appeared[name] = now
        time.sleep(POLL_S)
    for name in files(folder) - appeared.keys():
        appeared[name] = time.monotonic() - start
    return Watched(code, (folder / "run.log").read_text(), appeared, time.monotonic() - start)


@dataclass
class Stage:
    """Kill after ``marker`` appeared (``None``: from the start), within ``length`` seconds, before ``next``."""

    marker: str | None
    next: str | None
    length: float

    @property
    def label(self) -> str:
        return short(self.marker) if self.marker else "start-up, data, base"


def short(name: str) -> str:
    """A file name without its hashes: ``cache/runs/KEY/scores/control-HASH-seed0.json`` ->
    ``scores/control-seed0.json``, ``cache/controls/KEY.json`` -> ``controls/*.json``."""
    name = re.sub(r"^cache/(runs/[0-9a-f]+/)?", "", name)
    return re.sub(r"-[0-9a-f]{8,}-", "-", re.sub(r"/[0-9a-f]{16,}\.", "/*.", name))


def stages(reference: Watched) -> list[Stage]:
    """The stages of a scan: between the files it wrote, in the order they first appeared."""
    order = sorted(reference.appeared, key=reference.appeared.get)
    times = [0.0] + [reference.appeared[n] for n in order] + [reference.seconds]
    markers: list[str | None] = [None, *order]
    nexts: list[str | None] = [*order, None]
    return [Stage(m, n, max(times[i + 1] - times[i], 0.0)) for i, (m, n) in enumerate(zip(markers, nexts))]


def kill_in(zygote: Zygote, inputs: Inputs, folder: Path, stage: Stage, delay: float) -> tuple[int, str]:
    """Start the scan, kill it ``delay`` seconds into ``stage``; its exit code and the last file it wrote."""
    pid = zygote.start(scan_argv(inputs, folder), folder / "cache", folder / "killed.log")
    wait_for = stage.marker
    deadline = None
    while (code := zygote.ended()) is None:
        seen = files(folder)
        if deadline is None and (wait_for is None or wait_for in seen):
            deadline = time.monotonic() + delay
        if deadline is not None and (time.monotonic() >= deadline or (stage.next and stage.next in seen)):
            os.kill(pid, signal.SIGKILL)
            code = zygote.wait()
            break
        time.sleep(POLL_S)
    return code, newest(folder)


def newest(folder: Path) -> str:
    """The last file the killed run wrote (where it was killed), or ``start-up`` when none."""
    found = [p for p in folder.rglob("*") if p.is_file() and not IGNORED.search(p.name)]
    return short(max(found, key=lambda p: p.stat().st_mtime_ns).relative_to(folder).as_posix()) if found else "none"


def result(folder: Path) -> dict:
    return json.loads((folder / "out.json").read_text())


@pytest.fixture(scope="module")
def inputs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    folder = tmp_path_factory.mktemp("kill-inputs")
    battery = folder / "mini.yaml"
    battery.write_text(MINI_YAML)
    return Inputs(write_jsonl(folder / "numbers.jsonl", number_rows(16)), tiny_model_dir, battery)


def test_killed_at_any_moment_the_same_command_finishes_with_the_same_result(
    zygote: Zygote, inputs: Inputs, tmp_path: Path
) -> None:
    reference = watch(zygote, inputs, tmp_path / "reference")
    assert reference.code in (0, 1), reference.log
    expected = stable(result(tmp_path / "reference"), frozenset({"command"}))
    plan = stages(reference)
    assert len(plan) >= 15, plan  # start-up, fingerprint, manifest, 2 control draws, base, 3 students, report ...

    rng = random.Random(SEED)
    trials = [(stage, rng.uniform(0.0, stage.length)) for stage in plan for _ in range(TRIALS_PER_STAGE)]
    assert len(trials) >= 30
    landed: Counter[tuple[str, str]] = Counter()
    killed = 0
    for k, (stage, delay) in enumerate(trials):
        folder = tmp_path / f"trial-{k:02d}"
        code, where = kill_in(zygote, inputs, folder, stage, delay)
        killed += code == -signal.SIGKILL
        landed[(stage.label, where if code == -signal.SIGKILL else "finished before the kill")] += 1

        zygote.start(scan_argv(inputs, folder), folder / "cache", folder / "rerun.log")
        rerun = zygote.wait()
        log = (folder / "rerun.log").read_text()
        assert rerun == reference.code, f"trial {k} ({stage.label} + {delay:.3f} s): {log}"
        assert "Traceback" not in log and "damaged" not in log, log  # atomic writes: a kill leaves no damaged file
        assert stable(result(folder), frozenset({"command"})) == expected, f"trial {k}: {stage.label} + {delay:.3f} s"
        manifest = json.loads(next((folder / "cache" / "runs").glob("*/manifest.json")).read_text())
        assert manifest["status"] == "finished"

    print(f"\n{len(trials)} trials over {len(plan)} stages, {killed} killed; planned stage -> last file written:")
    for (planned, where), n in sorted(landed.items()):
        print(f"  {n} x {planned} -> {where}")
