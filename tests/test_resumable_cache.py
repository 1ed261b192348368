"""The one resumable-cache helper (:func:`auditor.io.compute_once`, read side :func:`auditor.io.read_entry`): computed
once under a lock and sealed; a damaged or missing entry is said in one line and computed again; files written before
seals are still read. Control draws, generate chunks and calibration pair records go through it; run-folder stages
read through :func:`~auditor.io.read_entry`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from auditor.io import SEAL, compute_once, read_entry, read_sealed_json
from tests.test_damaged import DAMAGE, damage_lines

ROOT = Path(__file__).resolve().parents[1]


class Counter:
    """A ``compute`` that counts its calls."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return dict(self.value)


def test_an_entry_is_computed_once_sealed_and_then_read(tmp_path: Path) -> None:
    compute = Counter({"texts": ["1, 2", None], "n": 7})
    path = tmp_path / "chunks" / "00000.json"
    assert compute_once(path, compute) == ({"texts": ["1, 2", None], "n": 7}, False)
    assert SEAL in json.loads(path.read_text())
    assert compute_once(path, compute) == ({"texts": ["1, 2", None], "n": 7}, True)
    assert compute.calls == 1


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_entry_is_reported_in_one_line_and_computed_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    compute = Counter({"values": [0.125, 3.5, 42]})
    path = tmp_path / "e.json"
    compute_once(path, compute)
    DAMAGE[how](path)
    assert compute_once(path, compute) == ({"values": [0.125, 3.5, 42]}, False)
    lines = damage_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(path) in lines[0]
    assert compute.calls == 2 and read_sealed_json(path) == {"values": [0.125, 3.5, 42]}


def test_an_entry_its_parser_rejects_is_damaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps({"other": 1}))  # sound JSON, unsealed, without the field the parser needs
    value, cached = compute_once(path, Counter({"rows": [1, 2]}), lambda blob: len(blob["rows"]))
    assert (value, cached) == (2, False)
    lines = damage_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "unreadable: KeyError" in lines[0]


def test_an_entry_written_before_seals_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"completions": ["4, 5"], "attempts": 3}))
    compute = Counter({"completions": ["other"], "attempts": 1})
    assert compute_once(path, compute) == ({"completions": ["4, 5"], "attempts": 3}, True)
    assert compute.calls == 0


def test_without_the_cache_nothing_is_read_or_written(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps({"n": 1}))
    assert compute_once(path, Counter({"n": 2}), use_cache=False) == ({"n": 2}, False)
    assert json.loads(path.read_text()) == {"n": 1}
    assert not (tmp_path / "none.json").exists() and not (tmp_path / "none.json.lock").exists()
    compute_once(tmp_path / "none.json", Counter({"n": 2}), use_cache=False)
    assert not (tmp_path / "none.json").exists() and not (tmp_path / "none.json.lock").exists()


def test_read_entry_says_nothing_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert read_entry(tmp_path / "missing.json") is None
    assert capsys.readouterr().err == ""


WORKER = """
import sys, time
from pathlib import Path
from auditor.io import compute_once
path, log = Path(sys.argv[1]), Path(sys.argv[2])
def compute():
    with open(log, "a") as f:
        f.write("computed\\n")
    time.sleep(1.0)
    return {"value": 42}
value, cached = compute_once(path, compute)
print(value["value"], cached)
"""


def test_processes_asking_at_once_compute_it_once(tmp_path: Path) -> None:
    path, log = tmp_path / "shared" / "e.json", tmp_path / "log"
    argv = [sys.executable, "-c", WORKER, str(path), str(log)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(3)]
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert outs == ["42 False", "42 True", "42 True"]
    assert log.read_text() == "computed\n"


def _fake_pair(calls: list[str]) -> Any:
    """A stand-in for the pair's generate + scan: its record, and the call noted."""

    def scan(config: Any, work: Path, name: str, seed: int, gen: Any, progress: Any) -> dict[str, Any]:
        calls.append(name)
        draw = {"name": name, "seed": seed, "rows": 12, "dataset": [10.5, 2.25], "control": [9.0, 3.0], "words": None}
        options = ["animal: owl", "animal: cat"]
        return {"draw": draw, "options": options, "base": [8.0, 4.0], "device": "cpu", "train_precision": "float32"}

    return scan


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_calibration_pair_record_is_sealed_and_a_damaged_one_scanned_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    from auditor import calibrate as cal
    from auditor.calibration.profile import ProfileDraw
    from auditor.generate import GenerateConfig

    calls: list[str] = []
    monkeypatch.setattr(cal, "_scan_pair", _fake_pair(calls))
    config, gen = cal.CalibrateConfig(), GenerateConfig(out=str(tmp_path / "data" / "null-300.jsonl"))
    expected = ProfileDraw("null-300", 300, 12, [10.5, 2.25], [9.0, 3.0])
    assert cal.scan_pair(config, tmp_path, "null-300", 300, gen, print) == expected
    record = cal.pair_record(config, tmp_path, "null-300")
    assert SEAL in json.loads(record.read_text())
    assert cal.scan_pair(config, tmp_path, "null-300", 300, gen, print) == expected and calls == ["null-300"]

    DAMAGE[how](record)
    assert cal.scan_pair(config, tmp_path, "null-300", 300, gen, print) == expected
    lines = damage_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(record) in lines[0] and calls == ["null-300", "null-300"]

    record.write_text(json.dumps(read_sealed_json(record)))  # a record written before seals
    assert cal.scan_pair(config, tmp_path, "null-300", 300, gen, print) == expected and len(calls) == 2


def test_a_pair_record_without_its_options_is_scanned_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from auditor import calibrate as cal
    from auditor.generate import GenerateConfig

    calls: list[str] = []
    monkeypatch.setattr(cal, "_scan_pair", _fake_pair(calls))
    config, gen = cal.CalibrateConfig(), GenerateConfig(out=str(tmp_path / "x.jsonl"))
    record = cal.pair_record(config, tmp_path, "pirate")
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"draw": {"name": "pirate"}}))
    assert cal.scan_pair(config, tmp_path, "pirate", 400, gen, print).name == "pirate" and calls == ["pirate"]
    assert "no 'options'" in capsys.readouterr().err


def test_build_profile_gives_the_key_a_scan_looks_up(tmp_path: Path) -> None:
    from auditor.calibrate import CalibrateConfig, build_profile, save_profile
    from auditor.calibration.lookup import profile_key
    from auditor.calibration.profile import NoiseProfile, ProfileDraw

    config = CalibrateConfig(traits=["animal"], max_rows=120)
    draws = [ProfileDraw(f"null-{k}", k, 120, [10.0 + k], [9.0]) for k in range(4)]
    base = {"requested": "x", "location": "/m", "fingerprint": "abc"}
    profile = build_profile(config, base, ["animal: owl"], [8.0], draws, [], ["a note"])
    assert profile.key == profile_key("abc", "numbers", config.probe, 120, 1)
    assert profile.budget == {"max_rows": 120, "seeds": 1} and list(profile.batteries) == ["animal"]
    path = save_profile(profile, tmp_path)
    assert path == tmp_path / f"{profile.key}.json"
    again = NoiseProfile.load(path)
    assert again.draws == draws and again.notes == ["a note"] and again.base == base
