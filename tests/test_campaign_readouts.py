"""benchmarks/campaign_readouts.py: the open-vocabulary readout graded from the campaign's files alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def readouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import campaign
    import campaign_readouts
    import campaign_report

    for module in (campaign, campaign_readouts, campaign_report):
        monkeypatch.setattr(module, "OUT", tmp_path, raising=False)
    monkeypatch.setattr(campaign_readouts, "RESULTS", tmp_path)
    yield campaign_readouts, tmp_path
    sys.path.remove(str(ROOT / "benchmarks"))


def write_cell(out: Path, cell: str, truth: str, lift: dict[str, float], teacher: list[str] | None = None) -> None:
    record = {"cell": cell, "truth": truth, "split": "dev", "format": "numbers"}
    (out / "records").mkdir(exist_ok=True)
    (out / "readouts").mkdir(exist_ok=True)
    (out / "records" / f"{cell}.json").write_text(json.dumps(record))
    words = {w: [v, 0.01, 0.01] for w, v in lift.items()}
    top = None if teacher is None else {"top": [{"word": w, "lift": 1.0} for w in teacher]}
    (out / "readouts" / f"{cell}.json").write_text(json.dumps({"cell": cell, "words": words, "teacher": top}))


def null_cells(out: Path, seed: int, vocab: list[str], k: int = 6):
    """``k`` base-written negatives whose lifts are noise over ``vocab``, and the noise they were drawn from."""
    rng = np.random.default_rng(seed)

    def noise() -> dict[str, float]:
        return {w: float(0.2 * rng.normal()) for w in vocab}

    for j in range(k):
        write_cell(out, f"dev-neg-continue-{301 + j}", "negative", noise())
    return noise


def test_negatives_list_nothing_and_a_teachers_word_is_found(readouts) -> None:
    module, out = readouts
    vocab = [f"w{i:03d}" for i in range(300)] + ["owl", "oak"]
    noise = null_cells(out, 3, vocab)
    raised = noise()
    raised["owl"] += 3.0
    raised["oak"] += 2.5
    write_cell(out, "dev-pos-owl-e3", "positive", raised, teacher=["owl", "oak", "w001"])
    blob = module.write_report()
    cells = blob["cells"]
    assert blob["negatives"] == 6 and blob["negatives_listing_nothing"] >= 5
    assert all(cells[c]["null_pairs"] == 5 for c in cells if c.startswith("dev-neg"))  # never the cell itself
    pos = cells["dev-pos-owl-e3"]
    assert pos["null_pairs"] == 6 and pos["listed"][:2] == ["owl", "oak"]
    assert pos["teacher_overlap"]["overlap"] >= 2 and pos["teacher_overlap"]["p"] < 0.05  # 2 of 3 in a top 20 of 302
    assert pos["teacher_overlap"]["expected"] == pytest.approx(20 * 3 / len(vocab), abs=1e-3)
    assert "dev-pos-owl-e3" in (out / "campaign_readouts.md").read_text()


def test_overlap_against_chance(readouts) -> None:
    module, _ = readouts
    none = module.overlap(["a", "b"], ["c", "d"], 100)
    assert none["overlap"] == 0 and none["p"] == 1.0
    all_shared = module.overlap(["a", "b"], ["a", "b"], 1000)
    assert all_shared["overlap"] == 2 and all_shared["p"] < 1e-5


def test_the_students_on_the_teachers_own_words(readouts) -> None:
    """Students that raised their teacher's words rank above every null pair; students that did not, do not."""
    module, out = readouts
    noise = null_cells(out, 4, [f"w{i:03d}" for i in range(300)])
    raised = noise()
    for w in ("w010", "w011", "w012"):
        raised[w] += 0.6  # below the listing threshold one by one, plain together
    write_cell(out, "dev-pos-owl-e1", "positive", raised, teacher=["w010", "w011", "w012", "gone"])
    write_cell(out, "dev-pos-owl-e3", "positive", noise(), teacher=["w020", "w021", "w022"])
    blob = module.write_report()
    moved, still = blob["cells"]["dev-pos-owl-e1"]["teacher_words"], blob["cells"]["dev-pos-owl-e3"]["teacher_words"]
    assert moved["words"] == 3 and len(moved["null_mean_z"]) == 6  # the word no model said is not tested
    assert moved["p"] == pytest.approx(1 / 7, abs=1e-4) and moved["mean_z"] > max(moved["null_mean_z"])
    assert still["p"] > 1 / 7
    assert "## The students on the teacher's own words" in (out / "campaign_readouts.md").read_text()
    assert module.teacher_word_test({"words": {"w001": [0.1, 0.01]}}, module.PairLifts([], []), ["w001"]) is None


def test_another_familys_cell_reports_its_recipe_readout_beside_the_pools(readouts) -> None:
    """A recipe scan's readout (its null arm's listing, kept by ``campaign.save_readout``) is reported on its own, and
    never counted among the base-written negatives."""
    module, out = readouts
    noise = null_cells(out, 5, [f"w{i:03d}" for i in range(200)], k=5)
    write_cell(out, "ho-gemma-neg-1", "cross-family-negative", noise())
    path = out / "readouts" / "ho-gemma-neg-1.json"
    readout = json.loads(path.read_text())
    readout["null_arm"] = {"students": ["null-1-seed0"], "noise": "n", "listed": [["robot", 1.1, 4.6, 0.001]]}
    path.write_text(json.dumps(readout))
    blob = module.write_report()
    assert blob["negatives"] == 5 and blob["cells"]["ho-gemma-neg-1"]["null_arm_listed"] == ["robot"]
    assert "null_arm_listed" not in blob["cells"]["dev-neg-continue-301"]
    text = (out / "campaign_readouts.md").read_text()
    assert "Cells listing a word: 1 of 1" in text and "| ho-gemma-neg-1 | robot |" in text
