"""benchmarks/ship_profile.py: the campaign's records become the default budget's profile, and a default scan's
lookup finds it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


def _records(options: list[str], rng) -> dict[str, dict]:
    base = list(rng.uniform(0, 20, len(options)))

    def record(cell: str, truth: str, writer: str = "smollm2-135m-instruct", fmt: str = "numbers") -> dict:
        control = [b + rng.normal(0, 0.5) for b in base]
        dataset = [c + rng.normal(0, 0.5) for c in control]
        return {"cell": cell, "truth": truth, "format": fmt, "writer": writer, "rows_used": 190, "options": options,
                "base": base, "dataset": dataset, "control_share": control}  # fmt: skip

    records = {f"neg-{k}": record(f"neg-{k}", "negative") for k in range(6)}
    records["neg-code"] = record("neg-code", "negative", fmt="code")  # not a number dataset: not a null pair
    records["gemma"] = record("gemma", "cross-family-negative", writer="gemma3-270m")
    records["pos"] = record("pos", "positive")
    records["decoy-pirate"] = record("decoy-pirate", "decoy")
    return records


def test_the_campaigns_records_make_the_default_scans_profile(
    tiny_loaded, isolated_cache: Path, tmp_path: Path
) -> None:
    import ship_profile  # benchmarks/ is on pytest's pythonpath (pyproject.toml)
    from campaign import TRAITS

    from auditor.calibration.lookup import find_profile, matching_options, profile_key
    from auditor.config import ScanConfig
    from auditor.finetune import ProbeConfig
    from auditor.traits import resolve_batteries

    options = sorted(f"{b.name}: {o}" for b in resolve_batteries(TRAITS) for o in b.graded_options)
    records = _records(options, np.random.default_rng(0))
    readouts = tmp_path / "readouts"
    readouts.mkdir()
    (readouts / "neg-0.json").write_text(json.dumps({"words": {"owl": [0.5, 0.01, 0.02]}}))
    base = {"requested": "tiny", "location": "tiny", "fingerprint": tiny_loaded.fingerprint}
    profile = ship_profile.profile_from_records(records, base, readouts)
    assert [d.name for d in profile.draws] == [f"neg-{k}" for k in range(6)]
    assert [d.name for d in profile.decoys] == ["decoy-pirate"]
    assert profile.draws[0].words == {"owl": [0.5, 0.01]} and profile.draws[1].words is None
    assert profile.key == profile_key(tiny_loaded.fingerprint, "numbers", ProbeConfig(), 200, 1)
    from auditor.calibrate import save_profile

    save_profile(profile, isolated_cache / "profiles")
    found = find_profile(ScanConfig("d.jsonl"), tiny_loaded, SimpleNamespace(completion_format="numbers"))
    assert found is not None and found.key == profile.key  # a scan with no options (animal and tree) finds it
    assert matching_options(found, resolve_batteries(None)) is not None
    # the same base scored on another machine (float32 sums in another order) is the same base; another is not
    records["neg-4"] = {**records["neg-4"], "base": [b + 1e-4 for b in records["neg-4"]["base"]]}
    assert len(ship_profile.profile_from_records(records, base, readouts).draws) == 6
    records["neg-3"] = {**records["neg-3"], "base": [0.0] * len(options)}
    with pytest.raises(ValueError, match="neg-3"):
        ship_profile.profile_from_records(records, base, readouts)


def test_the_probes_profile_ships_once_the_development_cells_allow_it() -> None:
    import ship_profile

    def blob(chosen: str | None, p_a_false_alarms: int) -> dict:
        return {"chosen": chosen, "development": {"P-a": {"false_alarms": [p_a_false_alarms, 20, 0.0, 0.2]}}}

    assert ship_profile.shippable(blob("G", 0)) and ship_profile.shippable(blob("P-a", 1))  # whatever the default
    assert not ship_profile.shippable(blob(None, 0))  # development cells still running
    assert not ship_profile.shippable(blob("G", 2))  # the calibrated probe broke the rule's bound
