"""Damaged cache and run-folder files (#23): each kind of file a scan or ``subaudit generate`` keeps is truncated or
garbled, and the rerun must say so in one line, recompute it, and give the undamaged run's result (a garbled
number that still parses must not be read as valid: checksums, :func:`auditor.io.seal`)."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.io import SEAL, read_sealed_json, sha256_of_file
from auditor.rundir import READOUT_SEAL, unseal_readout
from tests.test_kill import Inputs, scan_argv
from tests.test_resume import stable

runner = CliRunner()

#: Each kind of file a scan keeps (a glob in the cache; the first match in sorted order is damaged).
KINDS = {
    "control draw": "controls/*.json",
    "row log-probabilities": "logprobs/*.json",
    "manifest": "runs/*/manifest.json",
    "base scores": "runs/*/scores/base.json",
    "student scores": "runs/*/scores/dataset-*.json",
    "base readout": "runs/*/readouts/base.npz",
    "student readout": "runs/*/readouts/control-*.npz",
    "adapter weights": "runs/*/adapters/dataset-*/adapter_model.safetensors",
    "adapter config": "runs/*/adapters/null-*/adapter_config.json",
}


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garble(path: Path) -> None:
    """A JSON file: the digit nearest its middle changed (still valid JSON, a wrong value); any other file: the
    byte at its middle inverted."""
    data = bytearray(path.read_bytes())
    if path.suffix == ".json":
        digits = [m.start() for m in re.finditer(rb"[0-9]", bytes(data))]
        at = min(digits, key=lambda i: abs(i - len(data) // 2))
        data[at] = ord("0") + (data[at] - ord("0") + 1) % 10
        json.loads(data)  # still parses: only a checksum can tell
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {"truncated": truncate, "garbled": garble}


@pytest.fixture(scope="module")
def inputs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    from tests.conftest import MINI_YAML, number_rows, write_jsonl

    folder = tmp_path_factory.mktemp("damaged-inputs")
    battery = folder / "mini.yaml"
    battery.write_text(MINI_YAML)
    return Inputs(write_jsonl(folder / "numbers.jsonl", number_rows(16)), tiny_model_dir, battery)


@pytest.fixture(scope="module")
def reference(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, dict]:
    """One undamaged scan: its folder (``cache/``, ``out.json``), exit code and stable result."""
    folder = tmp_path_factory.mktemp("damaged-reference")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SUBAUDIT_CACHE", str(folder / "cache"))
        res = runner.invoke(app, scan_argv(inputs, folder))
    assert res.exit_code in (0, 1), res.output
    return folder, res.exit_code, stable(json.loads((folder / "out.json").read_text()), frozenset({"command"}))


def damage_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "damaged file" in line]


def assert_recomputed(path: Path, original: Path) -> None:
    """``path`` holds a good file again (its checksum checks), with the undamaged run's content where it is
    deterministic."""
    if path.suffix == ".npz":
        with zipfile.ZipFile(path) as z:
            assert READOUT_SEAL in z.namelist()
        unseal_readout(path.read_bytes())
    elif path.parent.parent.name == "adapters":  # checked against the checksum its student's scores recorded
        run = path.parents[2]
        recorded = read_sealed_json(run / "scores" / f"{path.parent.name}.json")["files"]
        assert recorded[path.relative_to(run).as_posix()] == sha256_of_file(path)
        assert path.read_bytes() == original.read_bytes()  # the student trained again, exactly as before
    else:
        assert SEAL in json.loads(path.read_text())
        blob = read_sealed_json(path)
        if "completions" in blob:  # the control drawn again: the same rows
            assert blob["completions"] == read_sealed_json(original)["completions"]


@pytest.mark.parametrize("how", sorted(DAMAGE))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_damaged_scan_file_is_reported_in_one_line_and_recomputed(
    inputs: Inputs,
    reference: tuple[Path, int, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    how: str,
) -> None:
    ref_folder, ref_code, expected = reference
    cache = tmp_path / "cache"
    shutil.copytree(ref_folder / "cache", cache)
    target = sorted(cache.glob(KINDS[kind]))[0]
    DAMAGE[how](target)
    monkeypatch.setenv("SUBAUDIT_CACHE", str(cache))

    res = runner.invoke(app, scan_argv(inputs, tmp_path))
    assert res.exit_code == ref_code, res.output
    assert "Traceback" not in res.output
    lines = damage_lines(res.output)
    assert len(lines) == 1 and str(target) in lines[0], res.output
    assert stable(json.loads((tmp_path / "out.json").read_text()), frozenset({"command"})) == expected
    assert_recomputed(target, ref_folder / "cache" / target.relative_to(cache))


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_damaged_generate_chunk_is_reported_in_one_line_and_drawn_again(
    tiny_model_dir: Path, tmp_path: Path, how: str
) -> None:
    out = tmp_path / "teacher.jsonl"
    args = ["generate", str(out), "--teacher", str(tiny_model_dir), "--rows", "12", "--seed", "1", "--overwrite"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    rows = out.read_text()
    chunk = sorted((Path(tmp_path / "cache") / "generate").glob("*/*.json"))[0]
    original = read_sealed_json(chunk)
    DAMAGE[how](chunk)

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    lines = damage_lines(again.output)
    assert len(lines) == 1 and str(chunk) in lines[0], again.output
    assert out.read_text() == rows  # drawn again with its seed: the same dataset
    assert read_sealed_json(chunk) == original
