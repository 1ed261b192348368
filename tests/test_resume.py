"""Resume and determinism of ``auditor.scan`` on the tiny model (each scan takes well under a second)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from auditor.config import ScanConfig
from auditor.errors import Interrupted, RuntimeFailure
from auditor.finetune import ProbeConfig
from auditor.pipeline import scan
from auditor.progress import Reporter
from auditor.report import to_json, to_markdown

# Keys that may differ between two runs of the same scan: clocks and where things were put.
VOLATILE = {"created", "timings_s", "run_dir", "cache", "from_cache", "seconds"}


def tiny_config(data: Path, model: Path, battery: Path, run_dir: Path, n_boot: int = 200, **probe: Any) -> ScanConfig:
    """The smallest real scan: 8 rows, 2 seeds x 3 arms, one optimiser step each, 2 questions."""
    return ScanConfig(
        data=str(data),
        base=str(model),
        traits=[str(battery)],
        seeds=2,
        max_rows=8,
        min_rows=1,
        probe=ProbeConfig(batch_size=4, max_steps=1, **probe),
        device="cpu",
        n_boot=n_boot,
        run_dir=str(run_dir),
    )


def stable(doc: Any, drop: frozenset[str] = frozenset()) -> Any:
    """``doc`` without the volatile keys (at any depth), normalised through JSON."""

    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in VOLATILE | drop}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(json.loads(json.dumps(doc)))


class Recorder(Reporter):
    """Records notes and stages; optionally presses Ctrl-C during the ``interrupt_at``-th probe run."""

    def __init__(self, interrupt_at: int | None = None, manifest: Path | None = None):
        self.interrupt_at = interrupt_at
        self.manifest = manifest
        self.notes: list[str] = []
        self.stages: list[str] = []
        self.first_status: str | None = None

    @contextmanager
    def stage(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        if not self.stages and self.manifest is not None:
            self.first_status = json.loads(self.manifest.read_text())["status"]
        self.stages.append(description)
        probes = sum(s.startswith("probe ") for s in self.stages)

        def advance(n: int = 1) -> None:
            if description.startswith("probe ") and probes == self.interrupt_at:
                raise KeyboardInterrupt  # after an optimiser step of this student: its adapter is half-trained

        yield advance

    def note(self, message: str) -> None:
        self.notes.append(message)

    def reused(self) -> list[str]:
        return [n for n in self.notes if "reused from the run directory" in n]


def test_interrupted_scan_resumes_to_the_uninterrupted_result(
    tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    manifest = run / "manifest.json"
    first = Recorder(interrupt_at=2, manifest=manifest)
    with pytest.raises(Interrupted) as info:
        scan(tiny_config(numbers_file, tiny_model_dir, battery, run), first)
    assert isinstance(info.value, KeyboardInterrupt) and info.value.run_dir == str(run)
    # the manifest was there before the first stage ran, and says what happened
    assert first.first_status == "running"
    doc = json.loads(manifest.read_text())
    assert doc["status"] == "interrupted" and doc["seeds"] == [0, 1] and doc["config"]["probe"]["max_steps"] == 1
    assert len(doc["dataset"]["sha256"]) == 64 and doc["base"]["fingerprint"] and doc["versions"]["torch"]
    assert doc["command"] and doc["key"]
    # finished stages kept (base scores, the first student and its adapter), nothing half-written
    assert sorted(p.name.split("-")[0] for p in (run / "scores").iterdir()) == ["base.json", "dataset"]
    assert [p.name.split("-")[0] for p in (run / "adapters").iterdir()] == ["dataset"]
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]

    again = Recorder()
    resumed = scan(tiny_config(numbers_file, tiny_model_dir, battery, run), again)
    assert again.reused() == [
        "base scores: reused from the run directory",
        "dataset student, seed 0: reused from the run directory",
    ]
    assert resumed.control.draw.from_cache is True
    assert json.loads(manifest.read_text())["status"] == "finished"

    # the same scan from scratch: another run dir and another control cache
    monkeypatch.setenv("SUBAUDIT_CACHE", str(tmp_path / "other-cache"))
    fresh = scan(tiny_config(numbers_file, tiny_model_dir, battery, tmp_path / "fresh"), Recorder())
    assert fresh.control.draw.from_cache is False

    def key(f: Any) -> tuple:
        d = f.to_dict()
        return d["battery"], d["option"], d["shift"], d["ci"], d["q"], d["level"]

    assert [key(f) for f in resumed.findings] == [key(f) for f in fresh.findings]
    assert [f.to_dict() for f in resumed.findings] == [f.to_dict() for f in fresh.findings]
    assert stable(to_json(resumed)) == stable(to_json(fresh))


def test_run_dir_of_another_scan_is_not_reused(
    tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    scan(tiny_config(numbers_file, tiny_model_dir, battery, run), Recorder())
    same = Recorder()
    scan(tiny_config(numbers_file, tiny_model_dir, battery, run), same)
    assert len(same.reused()) == 1 + 6  # base + 2 seeds x 3 arms
    # other probe settings, same --run-dir: the students there were trained differently
    other = Recorder()
    scan(tiny_config(numbers_file, tiny_model_dir, battery, run, learning_rate=5e-3), other)
    assert other.reused() == [] and any("holds a scan with other inputs" in n for n in other.notes)


def test_failed_scan_is_marked_in_the_manifest(
    tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeFailure("probe exploded")

    monkeypatch.setattr("auditor.finetune.Prober.train", boom)
    with pytest.raises(RuntimeFailure):
        scan(tiny_config(numbers_file, tiny_model_dir, battery, tmp_path / "run"), Recorder())
    doc = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert doc["status"] == "failed" and "probe exploded" in doc["error"]


def test_same_scan_twice_gives_identical_results(
    tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n_boot = 10000  # the command's default, so the command below runs the same scan
    a = scan(tiny_config(numbers_file, tiny_model_dir, battery, tmp_path / "a", n_boot), Recorder())
    monkeypatch.setenv("SUBAUDIT_CACHE", str(tmp_path / "cache-b"))
    b = scan(tiny_config(numbers_file, tiny_model_dir, battery, tmp_path / "b", n_boot), Recorder())
    assert not a.control.draw.from_cache and not b.control.draw.from_cache
    assert stable(to_json(a)) == stable(to_json(b))
    assert [r.losses for r in a.details.train_runs] == [r.losses for r in b.details.train_runs]
    adapters = sorted(p.name for p in (tmp_path / "a" / "adapters").iterdir())
    assert len(adapters) == 6 and adapters == sorted(p.name for p in (tmp_path / "b" / "adapters").iterdir())
    for name in adapters:  # peft folders: the same adapter weights, byte for byte
        weights = [tmp_path / run / "adapters" / name / "adapter_model.safetensors" for run in ("a", "b")]
        assert weights[0].read_bytes() == weights[1].read_bytes()

    # the same scan as a command in a fresh process, with another str-hash seed: the same JSON
    js = tmp_path / "c.json"
    cmd = [sys.executable, "-m", "auditor", "scan", str(numbers_file), "--base", str(tiny_model_dir)]
    cmd += ["--traits", str(battery), "--seeds", "2", "--max-rows", "8", "--min-rows", "1", "--batch-size", "4"]
    cmd += ["--max-steps", "1"]
    cmd += ["--device", "cpu", "--quiet", "--run-dir", str(tmp_path / "c"), "--json", str(js)]
    env = {**os.environ, "SUBAUDIT_CACHE": str(tmp_path / "cache-c"), "PYTHONHASHSEED": "12345"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert res.returncode == a.exit_code, res.stderr
    only_command = frozenset({"command"})  # `subaudit scan ...` here, `auditor.scan(...)` above
    assert stable(json.loads(js.read_text()), only_command) == stable(to_json(a), only_command)


def test_scan_records_scoring_compute(tiny_model_dir: Path, numbers_file: Path, battery: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from auditor.scoring import plan_battery
    from auditor.traits import load_battery_file

    result = scan(tiny_config(numbers_file, tiny_model_dir, battery, tmp_path / "run"), Recorder())
    sc = to_json(result)["details"]["scoring"]
    plan = plan_battery(AutoTokenizer.from_pretrained(tiny_model_dir), load_battery_file(battery))
    assert sc["mode"] == "exact" and sc["forward_tokens_per_model"] == plan.forward_tokens > 0
    assert sc["models_scored"] == 1 + 3 * 2  # base, then dataset, control and null students for 2 seeds
    assert sc["forward_tokens"] == 7 * plan.forward_tokens
    assert f"{plan.forward_tokens:,} forward tokens per model, {7 * plan.forward_tokens:,} in all." in to_markdown(
        result
    )
