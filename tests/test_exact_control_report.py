"""benchmarks/exact_control.py: the probe bar judged again at several seeds, from records alone."""

from __future__ import annotations

import json

import numpy as np


def _record(k: int, control: str, per_seed: list[list[float]]) -> dict:
    return {
        "dataset": f"neg-exact-{k}.jsonl",
        "control": control,
        "options": [f"animal: o{i}" for i in range(len(per_seed))],
        "shift": [float(np.mean(s)) for s in per_seed],
        "per_seed": per_seed,
    }


def test_noise_corrected_sum_removes_the_seed_variance() -> None:
    import exact_control

    same = _record(1, "new", [[2.0, 2.0, 2.0, 2.0], [-1.0, -1.0, -1.0, -1.0]])
    assert exact_control.noise_corrected(same) == 5.0  # no seed variance: the plain sum
    noisy = _record(1, "new", [[3.0, -3.0, 3.0, -3.0]])  # mean 0, sd^2 12: the estimate is -12 / 4
    assert abs(exact_control.noise_corrected(noisy) + 3.0) < 1e-9


def test_seeds_report_judges_each_dataset(tmp_path, monkeypatch) -> None:
    import exact_control

    monkeypatch.setattr(exact_control, "OUT", tmp_path)
    folder = tmp_path / "records" / "seeds4"
    folder.mkdir(parents=True)
    for k in range(1, 5):
        old = _record(k, "old", [[6.0, 6.0, 6.0, 6.0], [1.0, 1.0, 1.0, 1.0]])
        new = _record(k, "new", [[1.0, 1.0, 1.0, 1.0], [6.5 if k == 4 else 0.5] * 4])
        for r in (old, new):
            (folder / f"neg-exact-{k}.probe.{r['control']}.json").write_text(json.dumps(r))
    text = "\n".join(exact_control._seeds_lines(4))
    assert "SEEDS_RULE" in text and "| neg-exact-1.jsonl | 37.0 | 1.2 | 0.03 | - |" in text
    # dataset 4: its new sum (43.2) is over half the old (37.0) and an option moved 6.5 pp
    assert "**not met** (4 of 4 datasets judged: halved on 3, no option past 5 pp on 3)" in text
    assert "Against the exact-vs-exact floor" not in text  # no floor measured yet
    floor = _record(1, "exact", [[7.0, 5.0, 7.0, 5.0], [0.0, 0.0, 0.0, 0.0]])  # corrected 36 - 4/3 / 4 = 35.7
    (folder / "neg-exact-1.probe.exact.json").write_text(json.dumps(floor))
    text = "\n".join(exact_control._seeds_lines(4))
    assert "neg-exact-1.jsonl: the old control's corrected sum 37.0 is above the floor's 35.7" in text
    assert "the floor's largest mean shift is 6.0 pp (animal: o0)" in text
    (folder / "neg-exact-4.probe.new.json").unlink()
    assert "**undecided** (3 of 4" in "\n".join(exact_control._seeds_lines(4))
    assert exact_control._seeds_lines(2) == []


def test_dataset_students_are_shared_between_a_datasets_run_folders() -> None:
    """Only dataset students the folder lacks are copied, each with its adapter; control students never are."""
    import exact_control

    old, new = exact_control.run_folder(2, "probe", "old"), exact_control.run_folder(2, "probe", "new")
    for folder, names in (
        (old, ["dataset-aa-seed0", "dataset-aa-seed1", "control-bb-seed1"]),
        (new, ["dataset-aa-seed0"]),
    ):
        for name in names:
            (folder / "adapters" / name).mkdir(parents=True)
            (folder / "adapters" / name / "adapter_model.safetensors").write_text(f"{folder.name} {name}")
            (folder / "scores").mkdir(exist_ok=True)
            (folder / "scores" / f"{name}.json").write_text(folder.name)
    assert exact_control.share_dataset_students(2, "new") == 1
    assert sorted(p.name for p in (new / "scores").iterdir()) == ["dataset-aa-seed0.json", "dataset-aa-seed1.json"]
    assert (new / "scores" / "dataset-aa-seed0.json").read_text() == "2-probe-new"  # its own one is kept
    assert (
        new / "adapters" / "dataset-aa-seed1" / "adapter_model.safetensors"
    ).read_text() == "2-probe-old dataset-aa-seed1"
    assert exact_control.share_dataset_students(2, "new") == 0
