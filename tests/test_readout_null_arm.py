"""benchmarks/readout_null_arm.py: the null-arm readout's listings on base-written data, as scanned and as the current
test reads the same students."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_discover import synthetic


@pytest.fixture()
def module(tmp_path, monkeypatch):
    import readout_null_arm  # benchmarks/ is on pytest's pythonpath (pyproject.toml)

    monkeypatch.setattr(readout_null_arm, "work", lambda: tmp_path)
    return readout_null_arm


def _record(cell: str, listed: list) -> dict:
    return {"cell": cell, "level": "clean", "words_tested": 300, "noise": "n", "listed": listed,
            "top": [["w001", 9.0]], "readout_s": 1.0, "wall_s": 2.0}  # fmt: skip


def test_the_current_test_reads_the_students_the_scan_stored(module, tmp_path) -> None:
    """``retest`` reads the run folder's readouts (heavy-tailed students with no trait: the current test lists
    nothing); a cell whose run folder is gone keeps no ``now`` and the report says so."""
    from auditor.rundir import RunFolder

    base, dataset, control, null = synthetic(np.random.default_rng(11), {}, seeds=1, tails=2.0)
    folder = RunFolder(module.run_folder("ho-neg-continue-341"), "k", True)
    for name, readout in (("base", base), ("dataset-a-seed0", dataset[0]), ("control-b-seed0", control[0]),
                          ("null-c-seed0", null[0])):  # fmt: skip
        folder.save_readout(name, readout)
    scanned = _record("ho-neg-continue-341", [["w001", 0.5, 9.0, 1e-9]])
    now = module.retest(scanned)["now"]
    assert now["listed"] == [] and "Student t fitted" in now["noise"]
    gone = module.retest(_record("ho-neg-random-323", []))
    assert gone["now"] is None
    text = module.report([module.retest(scanned), gone])
    assert "with the normal tail the scans used, **1 of 2**" in text and "**0 of 1**" in text
    assert "| ho-neg-continue-341 | clean | 300 | 1: w001 | - |" in text and "(run folder gone)" in text
