"""The GitHub Action (action.yml) runs: its steps, in order, on the example data with a tiny budget and a tiny base.

The `run:` steps execute as written (bash, the inputs and step outputs substituted the way the runner does, the
runner's GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files). The three `uses:` steps belong to other actions and are not
run here: setup-python (this test's Python serves), cache (nothing to restore in a fresh folder) and upload-artifact
(the test checks the folder it would upload instead). subaudit is installed in the test environment, so the install
step takes its "installed already" branch; CI installs it from scratch with scripts/setup.sh.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _substitute(text: str, inputs: dict[str, str], outputs: dict[str, dict[str, str]]) -> str:
    def value(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("inputs."):
            return inputs[expr.split(".", 1)[1]]
        if expr == "github.action_path":
            return str(ROOT)
        if expr.startswith("steps."):
            _, step, _, name = expr.split(".", 3)
            return outputs.get(step, {}).get(name, "")
        raise AssertionError(f"unexpected expression in a run step: {expr}")

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def _read_outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_the_action_runs_its_steps_on_the_example_data(tiny_model_dir: Path, tmp_path: Path) -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    declared = action["inputs"]
    inputs = {name: str(spec.get("default", "")) for name, spec in declared.items()}
    inputs.update(
        data=str(ROOT / "examples" / "data" / "owl_numbers.jsonl"),
        base=str(tiny_model_dir),
        args="--traits tree --seeds 1 --max-rows 8 --min-rows 1 --batch-size 4 --max-steps 1",
        **{"output-dir": str(tmp_path / "out")},
    )
    assert set(inputs) == set(declared)
    summary = tmp_path / "summary.md"
    outputs: dict[str, dict[str, str]] = {}
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # this environment's subaudit and python
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "PATH": path}
    kinds = []
    final = None
    for i, step in enumerate(action["runs"]["steps"]):
        if "uses" in step:
            kinds.append(step["uses"].split("@")[0])
            continue
        kinds.append(step["name"])
        out_file = tmp_path / f"output-{i}.txt"
        out_file.write_text("")
        step_env = {k: _substitute(str(v), inputs, outputs) for k, v in step.get("env", {}).items()}
        script = _substitute(step["run"], inputs, outputs)
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            env={**env, **step_env, "GITHUB_OUTPUT": str(out_file)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        if "id" in step:
            outputs[step["id"]] = _read_outputs(out_file)
        if step["name"] == "Fail at the level asked":
            final = done.returncode
        else:
            assert done.returncode == 0, (step["name"], done.stdout, done.stderr)
    assert kinds == [
        "actions/setup-python",
        "actions/cache",
        "Install subaudit",
        "Scan",
        "actions/upload-artifact",
        "Fail at the level asked",
    ]
    scan = outputs["scan"]
    assert scan["exit-code"] in ("0", "1") and scan["level"] in ("clean", "low", "medium", "high")
    assert final == int(scan["exit-code"])  # the job fails exactly when the scan flagged
    out = tmp_path / "out"
    for name in ("report.md", "result.json", "junit.xml", "result.sarif", "pr-comment.md", "plots/forest.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "result.json").read_text())["verdict"]["level"] == scan["level"]
    assert "subaudit: **" in summary.read_text()


def test_pre_commit_hook_scans_every_staged_file_and_exits_with_the_worst(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path
) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = hooks[0]
    assert hook["id"] == "subaudit" and hook["language"] == "python"
    assert re.search(hook["files"], "data/train.jsonl") and not re.search(hook["files"], "src/main.py")
    from auditor.precommit import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    options = ["--base", str(tiny_model_dir), "--traits", "tree", "--max-rows", "8", "--max-steps", "1", "--quiet"]
    entry = hook["entry"].split()[3:]  # the options after `python -m auditor.precommit`
    assert main([*entry, *options, str(numbers_file)]) in (0, 1)
    assert main([*entry, *options, str(numbers_file), str(bad)]) == 2  # the bad file's exit code wins
