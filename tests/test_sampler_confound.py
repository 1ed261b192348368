"""benchmarks/sampler_confound.py: the direction test that reads G's push against the resampled cells'."""

from __future__ import annotations

import numpy as np


def _cell(push: np.ndarray) -> dict:
    return {"gradient": {"push": {f"b: o{i}": float(v) for i, v in enumerate(push)}}}


def test_direction_against_the_resampled_cells() -> None:
    import sampler_confound  # benchmarks/ is on pytest's pythonpath (pyproject.toml)

    rng = np.random.default_rng(0)
    shared = rng.normal(size=40)
    cells = {f"c{k}": _cell(shared * (k + 1) + rng.normal(0, 0.05, 40)) for k in range(4)}
    options = [f"b: o{i}" for i in range(40)]
    along = {"options": options, "shift": list(3 * shared)}
    d = sampler_confound.direction(along, cells)
    assert d["options"] == 40 and d["correlation"] > 0.99 and min(d["by_cell"].values()) > 0.99
    assert d["norm"] == round(float(np.linalg.norm(3 * shared)), 2) and len(d["top"]) == 4
    across = {"options": options, "shift": list(rng.normal(size=40))}
    assert abs(sampler_confound.direction(across, cells)["correlation"]) < 0.5
    # an option one cell lacks leaves the comparison
    del cells["c0"]["gradient"]["push"]["b: o0"]
    assert sampler_confound.direction(along, cells)["options"] == 39
