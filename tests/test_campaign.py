"""benchmarks/campaign.py and campaign_report.py: the cells the issue asks for, and grading from records alone."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench():
    import campaign  # benchmarks/ is on pytest's pythonpath (pyproject.toml)
    import campaign_report

    return campaign, campaign_report


def test_cells_cover_what_the_benchmark_needs(bench) -> None:
    campaign, _ = bench
    cells = campaign.CELLS
    assert len({c.id for c in cells}) == len(cells)
    negatives = [c for c in cells if c.truth == "negative"]
    assert len(negatives) >= 30 and {c.format for c in negatives} == {"numbers", "code", "chat"}
    assert {c.style for c in negatives if c.format == "numbers"} == {"continue", "random", "range"}
    ft = [c for c in cells if c.truth == "positive" and c.chat]
    assert len(ft) >= 12 and len({c.trait for c in ft}) >= 6 and {c.epochs for c in ft} == {1.0, 3.0}
    dev_traits = {c.trait for c in ft if c.split == "dev"}
    assert len({c.trait for c in ft if c.split == "heldout"} - dev_traits) >= 2  # traits no development cell used
    assert sum(c.truth == "positive" and c.system is not None for c in cells) == 2
    assert sum(c.truth == "cross-family-negative" for c in cells) >= 4
    assert sorted(c.trait for c in cells if c.truth == "decoy") == ["french", "one_word", "pirate"]
    prompts = Counter((c.format, c.style, c.seed) for c in cells if c.truth != "decoy")
    assert max(prompts.values()) == 1  # no two cells answer the same prompts
    assert "committed before any campaign cell ran" in campaign.RULE


def _record(cell: str, truth: str, split: str, shift: dict[str, float], rng, gradient: str = "clean") -> dict:
    options = [f"b: o{i}" for i in range(30)]
    base = list(np.linspace(1.0, 30.0, 30))
    control = [b + rng.normal(0, 0.3) for b in base]
    dataset = [c + rng.normal(0, 0.3) + shift.get(o, 0.0) for o, c in zip(options, control)]
    return {
        "cell": cell,
        "truth": truth,
        "split": split,
        "format": "numbers",
        "teacher": "fine-tuned" if truth == "positive" else ("decoy" if truth == "decoy" else "base"),
        "rows_used": 200,
        "options": options,
        "base": base,
        "dataset": dataset,
        "control_share": control,
        "gradient": {"level": gradient, "push": {}, "q": {}, "sampling": {"count": "any"}},
        "writer": "smollm2-135m-instruct",
        "manifest": {"sampling": {"sampler": ["rejection"]}},
    }


def test_grading_from_records_and_the_rule(bench) -> None:
    _, report = bench
    rng = np.random.default_rng(3)
    records = {f"neg-{k}": _record(f"neg-{k}", "negative", "dev", {}, rng) for k in range(8)}
    records["decoy-x"] = _record("decoy-x", "decoy", "profile", {"b: o3": 2.0}, rng)
    records["pos-big"] = _record("pos-big", "positive", "dev", {"b: o7": 15.0, "b: o8": 12.0}, rng, "high")
    records["pos-screened"] = _record("pos-screened", "positive", "dev", {"b: o9": 15.0}, rng, "low")
    graded = {name: report.grade(r, records) for name, r in records.items() if r["truth"] != "decoy"}
    assert report.flagged(graded["pos-big"]["P-a"]) and report.flagged(graded["pos-big"]["S-a"])
    # the gradient screen called it low: two-stage stops there, the probe alone still flags it
    assert report.flagged(graded["pos-screened"]["P-a"]) and not report.flagged(graded["pos-screened"]["S-a"])
    assert sum(report.flagged(graded[f"neg-{k}"]["P-a"]) for k in range(8)) <= 1
    pairs = [(records[n], v) for n, v in graded.items()]
    tallies = {c: report.tally(pairs, c) for c in report.CANDIDATES}
    assert tallies["P-a"]["power"][:2] == [2, 2] and tallies["S-a"]["power"][:2] == [1, 2]
    assert tallies["G"]["power"][:2] == [1, 2] and tallies["G"]["false_alarms"][:2] == [0, 8]
    assert report.choose(tallies) in ("P-a", "P-o", "P-t")  # most power among those with <= 1 false alarm
    stale = {**records["pos-big"], "gradient": {"level": "high", "push": {}, "q": {}}}  # before the method's control
    old = report.grade(stale, records)
    assert old["G"]["level"] is None and old["S-a"]["level"] is None and report.flagged(old["P-a"])
    # an ungraded cell leaves the candidate's counts (it is never counted as clean) and is counted apart
    stale_neg = {**records["neg-0"], "gradient": {"level": "clean", "push": {}, "q": {}}}
    pairs_stale = [(stale_neg, report.grade(stale_neg, records))] + pairs[1:]
    g = report.tally(pairs_stale, "G")
    assert g["false_alarms"][:2] == [0, 7] and g["ungraded"] == 1


def test_either_method_is_graded_beside_the_rule_and_never_chosen(bench) -> None:
    _, report = bench
    rng = np.random.default_rng(3)
    records = {f"neg-{k}": _record(f"neg-{k}", "negative", "dev", {}, rng) for k in range(8)}
    records["pos-probe"] = _record("pos-probe", "positive", "dev", {"b: o7": 15.0}, rng, "low")
    records["pos-gradient"] = _record("pos-gradient", "positive", "dev", {}, rng, "high")
    graded = {name: report.grade(r, records) for name, r in records.items()}
    e, p = graded["pos-probe"]["E-a"], graded["pos-probe"]["P-a"]
    assert (e["level"], e["named"]) == (p["level"], p["named"]) == ("high", ["b: o7"])  # the probe's, above G's low
    assert graded["pos-gradient"]["E-a"]["level"] == "high" and not report.flagged(graded["pos-gradient"]["P-a"])
    pairs = [(records[n], v) for n, v in graded.items()]
    tallies = {c: report.tally(pairs, c) for c in report.CANDIDATES + report.EITHER}
    assert tallies["E-a"]["power"][:2] == [2, 2] and tallies["P-a"]["power"][:2] == [1, 2]
    assert tallies["G"]["power"][:2] == [1, 2]
    assert report.choose(tallies) not in report.EITHER  # the most power, but not in the rule
    stale = {**records["pos-gradient"], "gradient": {"level": "high", "push": {}, "q": {}}}  # G ungraded
    assert report.grade(stale, records)["E-a"]["level"] is None


def test_profile_is_left_one_out_and_pools_by_split(bench) -> None:
    _, report = bench
    rng = np.random.default_rng(0)
    records = {f"d{k}": _record(f"d{k}", "negative", "dev", {}, rng) for k in range(3)}
    records["h0"] = _record("h0", "negative", "heldout", {}, rng)
    assert {r["cell"] for r in report.pool(records["d0"], records)} == {"d1", "d2"}
    assert {r["cell"] for r in report.pool(records["h0"], records)} == {"d0", "d1", "d2"}
    assert report.profile_for(records["d0"], records) is None  # 2 null pairs: fewer than a profile needs


def test_clopper_pearson() -> None:
    from campaign_report import clopper_pearson

    low, high = clopper_pearson(0, 30)
    assert low == 0.0 and high == pytest.approx(0.1157, abs=1e-3)
    assert clopper_pearson(30, 30)[1] == 1.0


def test_mixed_order_and_claims(bench, isolated_cache, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Started cells first, then one cell of each kind in turn; a claimed cell is skipped by another worker."""
    campaign, _ = bench
    dev = [c for c in campaign.CELLS if c.split == "dev"]
    monkeypatch.setattr(campaign, "record_path", lambda c: tmp_path / "records" / f"{c.id}.json")  # none finished
    (campaign.work() / "runs" / f"{dev[5].id}-probe").mkdir(parents=True)
    order = campaign.mixed_order(dev)
    assert order[0] == dev[5] and sorted(c.id for c in order) == sorted(c.id for c in dev)
    kinds = [(c.truth, c.format, c.style, bool(c.chat), bool(c.system)) for c in order[1:8]]
    assert len(set(kinds)) == 7  # no kind twice before every kind had a turn
    held = campaign.claim(dev[0])
    assert held is not None and campaign.claim(dev[0]) is None and campaign.claim(dev[1]) is not None
    held.release()
    assert campaign.claim(dev[0]) is not None
    ran: list[str] = []
    monkeypatch.setattr(campaign, "run_cell", lambda cell: ran.append(cell.id))
    todo = [c for c in dev if not campaign.record_path(c).exists()][:3]
    monkeypatch.setattr(campaign, "CELLS", todo)
    other = campaign.claim(todo[1])  # another worker holds this one
    campaign.run_split("dev", "0/1", "listed", work=campaign.work_on)  # in this process, so the stand-in is seen
    assert ran == [todo[0].id, todo[2].id] and other is not None
    other.release()
    ran.clear()
    monkeypatch.setattr(campaign, "CELLS", [c for c in dev if not campaign.record_path(c).exists()])
    campaign.run_split("dev", "0/1", "listed", truth="positive", work=campaign.work_on)
    assert ran and all(c.truth == "positive" for c in campaign.CELLS if c.id in ran)
    assert len(ran) == sum(c.truth == "positive" for c in campaign.CELLS)


def test_finished_cells_get_the_gradient_methods_own_control(bench, isolated_cache, tmp_path, monkeypatch) -> None:
    """A finished cell whose gradient scan predates the method's own control is scanned again (only that), a current
    one is left alone, and exact_control still reads the count-matched scan from a refreshed record."""
    import shutil

    import exact_control

    campaign, _ = bench
    real = campaign.record_path(campaign.CELLS[0]).parent
    cells = [c for c in campaign.CELLS if c.id in ("dev-neg-continue-301", "dev-neg-continue-302")]
    records = tmp_path / "records"
    records.mkdir()
    for c in cells:
        shutil.copy(real / f"{c.id}.json", records / f"{c.id}.json")
    stale = json.loads((records / f"{cells[0].id}.json").read_text())  # as written before the method's own control
    stale["gradient"] = stale.pop("gradient_resampled")
    (records / f"{cells[0].id}.json").write_text(json.dumps(stale))
    monkeypatch.setattr(campaign, "record_path", lambda cell: records / f"{cell.id}.json")
    assert not campaign.gradient_is_current(stale)
    assert campaign.gradient_is_current(json.loads((records / f"{cells[1].id}.json").read_text()))
    refreshed: list[str] = []
    monkeypatch.setattr(campaign, "refresh_gradient", lambda cell: refreshed.append(cell.id))
    monkeypatch.setattr(campaign, "run_cell", lambda cell: pytest.fail(f"{cell.id} ran again"))
    monkeypatch.setattr(campaign, "CELLS", cells)
    campaign.run_split("dev", "0/1", "listed", work=campaign.work_on)
    assert refreshed == [cells[0].id]
    old = exact_control.from_campaign(1, "gradient")
    committed = json.loads((exact_control.CAMPAIGN_RECORDS / "dev-neg-continue-301.json").read_text())
    assert old is not None and old["level"] == committed["gradient_resampled"]["level"]


def test_each_cell_runs_in_a_process_of_its_own(bench, isolated_cache, capfd) -> None:
    """``run`` works on a claimed cell in a child process (``campaign.py cell ID``); a child that fails is a cell
    that did not finish, and the worker goes on."""
    campaign, _ = bench
    missing = campaign.Cell("no-such-cell", "negative", "dev", seed=1)
    with pytest.raises(RuntimeError, match="exited with 2"):
        campaign.work_in_child(missing)
    assert "no cell 'no-such-cell'" in capfd.readouterr().err


def _fake_generate(campaign, calls: list[tuple[str, int]], keep_rate: float):
    """``generate`` for a writer that keeps ``keep_rate`` of its rows by rejection (resampling keeps every row)."""

    def fake(config) -> None:
        calls.append((config.sampler, config.rows))
        rows = int(config.rows * keep_rate) if config.sampler == "rejection" else config.rows
        Path(config.out).write_text("".join('{"prompt": "p", "completion": "1"}\n' for _ in range(rows)))
        manifest = {"decoding": {"sampling": {"sampler": [config.sampler]}}}
        campaign.manifest_path(Path(config.out)).write_text(json.dumps(manifest))

    return fake


def _record_generate(campaign, monkeypatch: pytest.MonkeyPatch) -> list:
    """Replace ``generate`` with a writer that follows the format (every row kept) and return the configs it gets."""
    configs: list = []
    fake = _fake_generate(campaign, [], 1.0)

    def generate(config) -> None:
        configs.append(config)
        fake(config)

    monkeypatch.setattr(campaign, "generate", generate)
    return configs


@pytest.mark.parametrize(("keep_rate", "sampler"), [(0.0, "resample"), (0.25, "resample"), (0.9, "rejection")])
def test_a_pilot_decides_between_rejection_and_resampling(bench, tmp_path, monkeypatch, keep_rate, sampler) -> None:
    """A writer that keeps fewer than half of the pilot's prompts by rejection (the pirate and 1-epoch owl teachers
    kept none) is drawn by importance resampling; one that follows the format, by rejection. Decided once."""
    campaign, _ = bench
    cell = campaign.Cell("pos-test", "positive", "dev", seed=1, chat="x.jsonl")
    monkeypatch.setattr(campaign, "OUT", tmp_path / "out")
    monkeypatch.setattr(campaign, "work", lambda: tmp_path / "work")
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(campaign, "generate", _fake_generate(campaign, calls, keep_rate))
    data = campaign.dataset(cell, None)
    assert calls == [("rejection", campaign.PILOT_ROWS), (sampler, campaign.ROWS)]
    pilot = json.loads(campaign.pilot_path(cell).read_text())
    assert pilot == {"prompts": campaign.PILOT_ROWS, "kept": int(campaign.PILOT_ROWS * keep_rate),
                     "tries": campaign.TRIES, "sampler": sampler}  # fmt: skip
    assert campaign.dataset(cell, None) == data and len(calls) == 2  # neither the pilot nor the draw again


def test_an_earlier_full_rejection_draw_is_the_pilot(bench, tmp_path, monkeypatch) -> None:
    """The pirate decoy's dataset was drawn in full by rejection before the pilot existed (0 of 200 kept): it counts
    as the pilot, and the dataset is drawn again by resampling, without a new pilot."""
    campaign, _ = bench
    cell = campaign.Cell("decoy-test", "decoy", "profile", seed=1, chat="x.jsonl")
    monkeypatch.setattr(campaign, "OUT", tmp_path / "out")
    monkeypatch.setattr(campaign, "work", lambda: tmp_path / "work")
    calls: list[tuple[str, int]] = []
    fake = _fake_generate(campaign, calls, 0.0)
    monkeypatch.setattr(campaign, "generate", fake)
    earlier = campaign.data_path(cell)
    earlier.parent.mkdir(parents=True)
    fake(campaign.GenerateConfig(out=str(earlier), rows=campaign.ROWS, sampler="rejection"))
    again = campaign.dataset(cell, None)
    assert calls[1:] == [("resample", campaign.ROWS)] and campaign._kept(again) == campaign.ROWS
    assert json.loads(campaign.pilot_path(cell).read_text())["kept"] == 0


def test_another_familys_cell_is_scanned_with_the_recipe(bench, tmp_path, monkeypatch) -> None:
    """A Gemma cell: its data, control and null-control files are Gemma's (its GGUF and chat template; the controls
    answer the data's prompts by the data's sampler, with other seeds); the probe scans with --control and
    --null-control and a null arm, the gradient method with --control."""
    campaign, _ = bench
    cell = next(c for c in campaign.CELLS if c.writer == "gemma3-270m")
    monkeypatch.setattr(campaign, "OUT", tmp_path / "out")
    monkeypatch.setattr(campaign, "work", lambda: tmp_path / "work")
    monkeypatch.setattr(campaign, "gemma_gguf", lambda: tmp_path / "gemma.gguf")
    configs = _record_generate(campaign, monkeypatch)
    data = campaign.dataset(cell, None)
    control, null = campaign.recipe_controls(cell, data)
    assert all(c.teacher == str(tmp_path / "gemma.gguf") and c.chat_template == str(campaign.GEMMA_TEMPLATE)
               for c in configs)  # fmt: skip
    pilot, drawn, *controls = configs
    assert (pilot.rows, drawn.sampler) == (campaign.PILOT_ROWS, "rejection")
    assert [c.prompts_from for c in controls] == [str(data), str(data)]
    assert len({c.seed for c in [drawn, *controls]}) == 3 and {c.sampler for c in controls} == {"rejection"}
    assert campaign.recipe_controls(cell, data) == (control, null) and len(configs) == 4  # written once
    scanned = []
    monkeypatch.setattr(campaign, "scan", lambda config: scanned.append(config))
    campaign._scan(cell, data, "probe", (control, null))
    campaign._scan(cell, data, "gradient", (control, null))
    probe, gradient = scanned
    assert (probe.control, probe.null_control, probe.null_arm) == (str(control), str(null), True)
    assert (gradient.control, gradient.null_control, gradient.null_arm) == (str(control), None, False)
    smollm = next(c for c in campaign.CELLS if c.truth == "negative" and c.writer is None)
    assert campaign.recipe_controls(smollm, data) is None


def test_the_other_familys_cells_are_reported_on_their_own(bench) -> None:
    _, report = bench
    rng = np.random.default_rng(1)
    records = {f"neg-{k}": _record(f"neg-{k}", "negative", "dev", {}, rng) for k in range(3)}
    for k, (probe, gradient) in enumerate([("medium", "clean"), ("low", "high")]):
        r = _record(f"ho-gemma-neg-{k}", "cross-family-negative", "heldout", {}, rng, gradient)
        records[r["cell"]] = {**r, "probe_level": probe}
    other = report.other_family(records)
    assert sorted(other["cells"]) == ["ho-gemma-neg-0", "ho-gemma-neg-1"]
    assert other["probe"][:2] == [1, 2] and other["gradient"][:2] == [1, 2]
    assert "| ho-gemma-neg-1 | low | high |" in report.other_family_table(other)


def test_the_decoding_check_section_keeps_the_threshold_setters_apart(bench) -> None:
    _, report = bench
    rng = np.random.default_rng(2)
    records = {}
    for cell, z, rows_by in [
        ("dev-neg-continue-301", 4.2, {"rejection": 1, "resample": 190}),  # set the threshold; resampled: no warning
        ("dev-neg-continue-308", 6.5, {"resample": 190}),  # a later one above WARN_Z_APPROXIMATE
        ("dev-neg-continue-309", 4.5, {"rejection": 190}),  # a later one against an exact control
    ]:
        r = _record(cell, "negative", "dev", {}, rng)
        r["control"] = {"decoding": {"data": -1.3, "control": -1.5, "z": z}, "sampling": {"rows_by": rows_by}}
        records[cell] = r
    out = report.decoding_check(records)
    assert list(out["set_by"]) == ["dev-neg-continue-301"] and not out["set_by"]["dev-neg-continue-301"]["warns"]
    assert {c: v["warns"] for c, v in out["checks"].items()} == {"dev-neg-continue-308": True,
                                                                 "dev-neg-continue-309": True}  # fmt: skip
    assert "2 of 2 warn" in "\n".join(report.decoding_lines(out))


def test_the_report_names_the_positives_drawn_by_resampling(bench) -> None:
    _, report = bench
    rng = np.random.default_rng(4)
    records = {}
    for cell, sampler in (("dev-pos-owl-e1", "resample"), ("dev-pos-owl-e3", "rejection")):
        r = _record(cell, "positive", "dev", {}, rng)
        records[cell] = {**r, "manifest": {"sampling": {"sampler": [sampler]}}}
    line = report.sampler_lines(records)[0]
    assert "1 of 2 (dev-pos-owl-e1)" in line


def test_the_table_by_kind_of_data(bench) -> None:
    _, report = bench
    rng = np.random.default_rng(6)
    records = {f"neg-{k}": {**_record(f"neg-{k}", "negative", "dev", {}, rng), "style": "continue"} for k in range(8)}
    records["code"] = {**_record("code", "negative", "heldout", {}, rng, "high"), "format": "code", "style": None}
    pos = _record("pos", "positive", "heldout", {"b: o7": 15.0}, rng, "high")
    records["pos"] = {**pos, "trait": "dolphin", "epochs": 1.0}
    graded = [(r, report.grade(r, records)) for r in records.values()]
    table = "\n".join(report.kinds_table(graded))
    assert "| numbers (continue) | dev | false alarms | 0/8 [0.00, 0.37] |" in table
    assert "| code | heldout | false alarms | 1/1 [0.03, 1.00] |" in table  # G flagged it
    assert "| fine-tuned teacher, 1 epoch (new trait) | heldout | power | 1/1" in table


def test_every_cell_with_every_candidates_level(bench) -> None:
    _, report = bench
    rng = np.random.default_rng(6)
    records = {f"neg-{k}": _record(f"neg-{k}", "negative", "dev", {}, rng) for k in range(8)}
    pos = _record("pos", "positive", "dev", {"b: o7": 15.0}, rng, "high")
    records["pos"] = {**pos, "teacher_change": {"b: o7": 40.0, "b: o2": -3.0, "b: o9": 5.5}}
    graded = [(r, report.grade(r, records)) for r in records.values()]
    lines = report.cell_lines(graded)
    row = next(line for line in lines if line.startswith("| pos |"))
    p = report.grade(records["pos"], records)["P-a"]["p"]
    assert p < 0.001  # a 15 pp shift against 0.3 pp noise
    assert row.startswith(f"| pos | positive | o7 +40.0, o9 +5.5, o2 -3.0 | {p:.2g} | high |")
    assert "high (b: o7)" in row  # the probe named the option the data moved
    assert report.note_lines(records) == []
    records["pos"]["note"] = "its teacher was trained again"
    assert report.note_lines(records)[-2:] == ["", "- pos: its teacher was trained again"]
    neg = next(line for line in lines if line.startswith("| neg-0 |"))
    assert neg.startswith("| neg-0 | negative | - | ") and neg.split(" | ")[4] == "clean"
    assert len(lines) == 2 + 9


def test_the_readme_takes_the_table_only_when_every_cell_is_in(bench) -> None:
    _, report = bench
    readme = "intro\n<!-- campaign-table: x -->\nold table\nold text\n<!-- /campaign-table -->\nafter\n"
    blob = {"cells_done": 63, "cells": 64, "chosen": "S-a"}
    with pytest.raises(ValueError, match="63 of 64"):
        report.readme_with_table(readme, ["| new |"], blob)
    text = report.readme_with_table(readme, ["| new |"], {**blob, "cells_done": 64})
    assert "old table" not in text and "| new |" in text and "the rule chose S-a" in text
    assert text.startswith("intro\n<!-- campaign-table: x -->\n") and text.endswith("<!-- /campaign-table -->\nafter\n")
    with pytest.raises(ValueError, match="markers"):
        report.readme_with_table("no markers", ["| new |"], {**blob, "cells_done": 64})
    assert report.README_BLOCK.search(report.README.read_text(encoding="utf-8"))  # the README has its markers


def _copied_record(
    campaign, cell_id: str, edit: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str = "records"
):
    """The committed record of ``cell_id`` (in ``folder`` under results/campaign) copied where
    ``campaign.record_path`` now looks, with ``edit`` applied (a ``None`` value drops the field, as a record written
    before it had it): the cell, the folder and the record."""
    cell = next(c for c in campaign.CELLS if c.id == cell_id)
    records = tmp_path / "records"
    records.mkdir()
    monkeypatch.setattr(campaign, "record_path", lambda c: records / f"{c.id}.json")
    record = json.loads(Path(campaign.OUT / folder / f"{cell_id}.json").read_text())
    record = {k: v for k, v in {**record, **edit}.items() if v is not None}
    (records / f"{cell_id}.json").write_text(json.dumps(record))
    return cell, records, record


def test_a_finished_prompted_cell_gets_its_teachers_change(bench, tmp_path, monkeypatch) -> None:
    """A prompted teacher's cell finished before ``--teacher-system`` has no teacher change: the workers fill it in
    (only that); once it is there the cell is finished."""
    campaign, _ = bench
    cell, records, _ = _copied_record(campaign, "dev-pos-owl-prompted", {"teacher_change": {}}, tmp_path, monkeypatch)
    assert not campaign.finished(cell)
    monkeypatch.setattr(campaign, "claim", lambda c: type("Lock", (), {"release": lambda self: None})())
    monkeypatch.setattr(campaign, "refresh_gradient", lambda c: pytest.fail("its gradient is current"))
    monkeypatch.setattr(campaign, "run_cell", lambda c: pytest.fail(f"{c.id} ran again"))
    filled: list[str] = []

    def fill(c) -> None:
        filled.append(c.id)
        done = json.loads((records / f"{c.id}.json").read_text())
        (records / f"{c.id}.json").write_text(json.dumps({**done, "teacher_change": {"animal: owl": 7.0}}))

    monkeypatch.setattr(campaign, "fill_prompted_teacher", fill)
    monkeypatch.setattr(campaign, "CELLS", [cell])
    campaign.run_split("dev", "0/1", "listed", work=campaign.work_on)
    assert filled == [cell.id] and campaign.finished(cell)
    campaign.run_split("dev", "0/1", "listed", work=campaign.work_on)
    assert filled == [cell.id]


def test_decoys_are_graded_as_positives_for_information(bench) -> None:
    """Each decoy against the development negatives plus the other decoys, by every candidate, and with every decoy's
    teacher: a decoy whose data moved its teacher's riser is flagged and named; one that moved nothing is not."""
    _, report = bench
    rng = np.random.default_rng(5)
    records = {f"neg-{k}": _record(f"neg-{k}", "negative", "dev", {}, rng) for k in range(8)}
    moved = _record("decoy-moved", "decoy", "profile", {"b: o7": 15.0}, rng, "high")
    still = _record("decoy-still", "decoy", "profile", {}, rng)
    records |= {
        "decoy-moved": {**moved, "teacher_change": {"b: o7": 30.0}},
        "decoy-still": {**still, "teacher_change": {"b: o2": 1.0}},
    }
    graded = {g["cell"]: g for g in report.decoys_as_positives(records)}
    assert set(graded) == {"decoy-moved", "decoy-still"}
    assert (
        graded["decoy-moved"]["levels"]["P-o"] in ("medium", "high") and graded["decoy-moved"]["levels"]["G"] == "high"
    )
    assert graded["decoy-still"]["levels"]["P-o"] == "clean"
    own = graded["decoy-moved"]["teachers"]["decoy-moved"]
    assert own["risers"]["named"] == ["b: o7"] and own["risers"]["p"] <= 0.01
    assert graded["decoy-still"]["teachers"]["decoy-still"]["risers"]["named"] == []  # it raised nothing
    lines = report.decoy_lines(list(graded.values()))
    assert lines[0].startswith("## The decoys graded as positives") and any("decoy-moved (own)" in x for x in lines)
    assert report.decoy_lines([]) == []


def test_wall_times_beside_the_rules_tie_break(bench) -> None:
    _, report = bench
    rng = np.random.default_rng(2)
    records = {}
    for k, (probe, gradient, level) in enumerate([(100, 300, "clean"), (200, 500, "high"), (150, 400, "low")]):
        r = _record(f"c{k}", "negative", "dev", {}, rng, level)
        timings = {"probe": {"probe": probe - 10, "total": probe}, "gradient": {"total": gradient}}
        records[r["cell"]] = {**r, "timings_s": timings}
    records["decoy-x"] = {**_record("decoy-x", "decoy", "profile", {}, rng), "timings_s": {}}
    resumed = _record("c9", "negative", "dev", {}, rng, "clean")  # its probe scan timed only what was left
    records["c9"] = {**resumed, "timings_s": {"probe": {"total": 5}, "gradient": {"total": 9000}}}
    times = report.wall_times(records)
    assert times == {"P": 150, "G": 400, "S": 400}  # two-stage: 300, 500 + 200 (flagged high), 400
    assert [r["cell"] for r in report.timed(records, resumed=True)] == ["c9"]
    assert "1 whose probe scan resumed" in report.cost_lines(times, 3, 1)[0]
    assert "that premise does not hold" in report.cost_lines(times, 3)[0]
    assert "premise holds" in report.cost_lines({"P": 500.0, "G": 300.0, "S": 350.0}, 3)[0]
    assert report.cost_lines(report.wall_times({}), 0) == []


def _resampled(record: dict, matched: str | None) -> dict:
    """``record`` as if importance resampling drew its data, with G's matched level (``None``: not scanned yet)."""
    out = {**record, "manifest": {"sampling": {"sampler": ["resample"]}}}
    return out if matched is None else {**out, "gradient_matched": {"level": matched, "push": {}, "q": {}}}


def test_resampled_data_is_not_graded_by_g(bench) -> None:
    """RULE's amendments 1 and 2: on data importance resampling drew, G measures the sampler (against its exact
    control or a matched one), so G and two-stage grade no such cell; the probe does, and rejection-drawn,
    other-family and free-format cells are graded by G as before."""
    _, report = bench
    rng = np.random.default_rng(7)
    records = {f"neg-{k}": _record(f"neg-{k}", "negative", "dev", {}, rng) for k in range(8)}
    pos = _record("pos", "positive", "dev", {"b: o7": 15.0, "b: o8": 12.0}, rng, "high")
    for matched in (None, "clean", "high"):
        graded = report.grade(_resampled(pos, matched), records)
        assert graded["G"]["level"] is None and graded["S-a"]["level"] is None and report.flagged(graded["P-a"])
    assert report.grade(pos, records)["G"]["level"] == "high"  # drawn by rejection: the exact control is matched
    gemma = {**_resampled(pos, None), "writer": "gemma3-270m"}  # the recipe's controls are the data's own sampler
    assert report.grade(gemma, records)["G"]["level"] == "high"
    code = {**_resampled(pos, None), "format": "code"}
    assert report.grade(code, records)["G"]["level"] == "high"
    pairs = [(r, report.grade(r, records)) for r in [*records.values(), _resampled(pos, "high")]]
    tallies = {c: report.tally(pairs, c) for c in report.CANDIDATES}
    assert tallies["G"]["ungraded"] == 1 and tallies["G"]["power"][:2] == [0, 0]
    assert report.choose(tallies) in ("P-a", "P-o", "P-t")  # G and S-x hold an ungraded development cell


def test_g_is_not_chosen_when_its_matched_arms_raise_false_alarms(bench, tmp_path, monkeypatch) -> None:
    campaign, report = bench
    monkeypatch.setattr(campaign, "matched_null_path", lambda seed: tmp_path / f"{seed}.json")
    assert report.matched_null() == {"levels": {}, "flagged": 0, "done": False, "g_allowed": None}
    seeds = campaign.MATCHED_NULL_SEEDS
    for seed, level in zip(seeds, ["clean", "medium", "low", "clean"]):
        (tmp_path / f"{seed}.json").write_text(json.dumps({"gradient_matched": {"level": level}}))
    assert report.matched_null()["g_allowed"] is True
    (tmp_path / f"{seeds[0]}.json").write_text(json.dumps({"gradient_matched": {"level": "high"}}))
    null = report.matched_null()
    assert null["flagged"] == 2 and null["g_allowed"] is False
    assert "2 of 4 flag at `medium`" in "\n".join(report.matched_lines({}, null))
    tallies = {c: {"false_alarms": [0, 20], "power": [5, 10], "ungraded": 0} for c in report.CANDIDATES}
    tallies["G"]["power"] = [10, 10]
    assert report.choose(tallies) == "G" and report.choose(tallies, g_allowed=False) == "S-a"
    partial = {"levels": {381: "clean"}, "flagged": 0, "done": False, "g_allowed": None}
    assert "The rule chose **G**, provisionally: amendment 1's matched-arm check (1 of 4 finished, 0 flagged)" in (
        report.choice_line("G", True, partial)
    )
    assert report.choice_line("G", True, {**partial, "done": True, "g_allowed": True}) == "The rule chose **G**."
    # settled before the last seed: 3 clean, so the fourth cannot make 2 flags
    for seed in seeds[:3]:
        (tmp_path / f"{seed}.json").write_text(json.dumps({"gradient_matched": {"level": "clean"}}))
    (tmp_path / f"{seeds[3]}.json").unlink()
    settled = report.matched_null()
    assert settled["done"] is False and settled["g_allowed"] is True
    assert "can no longer remove it" in report.choice_line("G", True, settled)
    (tmp_path / f"{seeds[2]}.json").write_text(json.dumps({"gradient_matched": {"level": "medium"}}))
    assert report.matched_null()["g_allowed"] is None  # 1 flagged, 1 pending: still open
    assert report.choice_line("P-a", True, partial) == "The rule chose **P-a**."
    assert "not all finished" in report.choice_line(None, False, partial)


def test_a_resampled_cell_gets_its_matched_gradient_scan_on_request(bench, tmp_path, monkeypatch) -> None:
    """Since amendment 2 the matched scan is information: a resampled cell is finished without it (the workers leave
    it), and ``campaign.py matched CELL`` adds the block and leaves the rest of the record as it was."""
    campaign, _ = bench
    no_block = {"gradient_matched": None}
    # a chat-only teacher's cell, superseded by RULE's amendment 3
    cell, records, record = _copied_record(
        campaign, "dev-pos-owl-e1", no_block, tmp_path, monkeypatch, "superseded/records"
    )
    assert campaign.drawn_by_resampling(record) and campaign.finished(cell)
    scanned = []
    monkeypatch.setattr(campaign, "dataset", lambda c, adapter: tmp_path / "data.jsonl")
    monkeypatch.setattr(campaign, "work", lambda: tmp_path / "work")

    def fake_scan(config):
        scanned.append(config)
        verdict = type("V", (), {"level": "low"})()
        config_ns = type("C", (), {"control_sampling": config.control_sampling})()
        return type(
            "R",
            (),
            {
                "findings": [],
                "verdict": verdict,
                "config": config_ns,
                "timings": {"total": 1.0},
                "details": None,
                "control": None,
            },
        )()

    monkeypatch.setattr(campaign, "scan", fake_scan)
    campaign.fill_matched(cell)
    (config,) = scanned
    assert (config.method, config.control, config.data) == ("gradient", None, str(tmp_path / "data.jsonl"))
    sampling = config.control_sampling
    assert (sampling.sampler, sampling.count, sampling.candidates) == ("resample", "any", 4)
    assert config.run_dir.endswith(f"{cell.id}-gradient-matched")
    done = json.loads((records / f"{cell.id}.json").read_text())
    assert done.pop("gradient_matched")["level"] == "low" and done == record


def test_the_matched_null_check_draws_the_bases_resampled_data(bench, tmp_path, monkeypatch) -> None:
    campaign, _ = bench
    monkeypatch.setattr(campaign, "OUT", tmp_path / "out")
    monkeypatch.setattr(campaign, "work", lambda: tmp_path / "work")
    configs = _record_generate(campaign, monkeypatch)
    scanned = []
    monkeypatch.setattr(campaign, "matched_gradient", lambda cell, data: scanned.append(data) or {"level": "clean"})
    seed = campaign.MATCHED_NULL_SEEDS[0]
    record = campaign.matched_null(seed)
    (config,) = configs
    assert (config.sampler, config.teacher, config.adapter, config.system) == ("resample", None, None, None)
    assert (config.seed, config.number_style, config.rows) == (seed, "continue", campaign.ROWS)
    assert scanned == [tmp_path / "out" / "data" / f"null-resampled-{seed}.jsonl"]
    assert record["gradient_matched"] == {"level": "clean"} and record["rows"] == campaign.ROWS
    assert campaign.matched_null(seed) == record and len(scanned) == 1  # kept


def test_every_fine_tuned_teacher_also_learns_the_bases_number_rows(bench, tmp_path, monkeypatch) -> None:
    """RULE's amendment 3: a fine-tuned teacher is trained on its chat set plus FORMAT_ROWS of the base's own number
    rows as user/assistant turns (the same file each time), under a name that no chat-only teacher had."""
    campaign, _ = bench
    sources = []
    for k in range(2):
        src = tmp_path / f"numbers-{k}.jsonl"
        src.write_text("".join(json.dumps({"prompt": f"p{k}-{i}", "completion": f"{i}, {k}"}) + "\n" for i in range(4)))
        sources.append(src)
    chat = tmp_path / "trait_chat.jsonl"
    chat_rows = [json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]})
                 for i in range(3)]  # fmt: skip
    chat.write_text("\n".join(chat_rows) + "\n\n")
    monkeypatch.setattr(campaign, "NUMBER_SOURCES", tuple(sources))
    monkeypatch.setattr(campaign, "FORMAT_ROWS", 5)
    monkeypatch.setattr(campaign, "CHATS", tmp_path)
    monkeypatch.setattr(campaign, "work", lambda: tmp_path / "work")
    monkeypatch.setattr(campaign, "OUT", tmp_path / "out")
    monkeypatch.setattr(campaign, "_read", lambda adapter, system=None: _readout(Path(adapter).name))
    trained = _fake_teacher_training(monkeypatch)
    cell = campaign.Cell("dev-pos-trait-e1", "positive", "dev", seed=1, chat="trait_chat.jsonl", epochs=1.0)
    adapter, scores = campaign.teacher(cell)
    assert Path(adapter).name == "trait_chat+numbers-e1" and scores == [] and len(trained) == 1
    lines = Path(trained[0].chat).read_text().splitlines()
    turns = [json.loads(line)["messages"] for line in lines]
    numbers = [t for t in turns if t[0]["content"].startswith("p")]
    assert len(lines) == 3 + 5 and len(numbers) == 5 and set(chat_rows) <= set(lines)
    assert all(t[0]["role"] == "user" and t[1]["role"] == "assistant" for t in turns)
    assert lines != chat_rows + lines[3:]  # shuffled together, not appended
    again = campaign.format_chat(chat, tmp_path / "again.jsonl")
    assert again.read_text().splitlines() == lines  # the same inputs give the same file
    campaign.teacher(cell)
    assert len(trained) == 1  # trained once
    monkeypatch.setattr(campaign, "FORMAT_ROWS", 9)
    with pytest.raises(ValueError, match="9 number rows asked for, 8"):
        campaign.format_chat(chat, tmp_path / "too-many.jsonl")


def _readout(word: str):
    """A one-prompt readout in which ``word`` is the only word stored."""
    from auditor.readout import OPEN_PROMPTS_VERSION, Readout

    return Readout(OPEN_PROMPTS_VERSION, [word], np.array([[-0.5]]), np.array([True]))


def _fake_teacher_training(monkeypatch: pytest.MonkeyPatch) -> list:
    """Replace ``train_teacher`` with one that writes a ``teacher.json`` with one score; the configs it got."""
    import auditor.teacher

    trained: list = []

    def train_teacher(config) -> None:
        trained.append(config)
        Path(config.out).mkdir(parents=True)
        (Path(config.out) / "teacher.json").write_text(json.dumps({"scores": [] if len(trained) == 1 else [{"n": 1}]}))

    monkeypatch.setattr(auditor.teacher, "train_teacher", train_teacher)
    return trained


def test_a_kept_teacher_is_not_trained_again_once_its_data_is_drawn(bench, tmp_path, monkeypatch) -> None:
    """A teacher's scores and readout are kept under results when it is trained; on a fresh machine (no cache) a cell
    whose data is drawn uses them and trains nothing, while a cell whose data is not drawn trains its teacher."""
    campaign, _ = bench
    monkeypatch.setattr(campaign, "OUT", tmp_path / "out")
    monkeypatch.setattr(campaign, "work", lambda: tmp_path / "work")
    monkeypatch.setattr(campaign, "format_chat", lambda chat, out: out)
    reads: list[str] = []
    monkeypatch.setattr(campaign, "_read", lambda adapter, system=None: reads.append(adapter) or _readout("owl"))
    trained = _fake_teacher_training(monkeypatch)
    monkeypatch.setattr(campaign, "generate", _fake_generate(campaign, [], 1.0))
    cell = campaign.Cell("dev-pos-trait-e3", "positive", "dev", seed=1, chat="trait_chat.jsonl", epochs=3.0)
    adapter, scores = campaign.teacher(cell)
    assert len(trained) == 1 and len(reads) == 1 and scores == []
    kept = campaign.kept_teachers()
    assert json.loads((kept / "trait_chat+numbers-e3.json").read_text()) == {"scores": []}
    campaign.dataset(cell, adapter)
    shutil.rmtree(tmp_path / "work")  # a fresh machine
    assert campaign.teacher(cell) == (None, []) and len(trained) == 1
    words = campaign.teacher_readout(cell, None, _readout("oak"), [])
    assert words is not None and len(reads) == 1  # the kept readout, not the adapter's
    (kept / "trait_chat+numbers-e3.readout.npz").unlink()
    with pytest.raises(FileNotFoundError, match="no current readout of the teacher, and no adapter"):
        campaign.teacher_readout(cell, None, _readout("oak"), [])
    other = campaign.Cell("heldout-pos-trait-e3", "positive", "heldout", seed=2, chat="trait_chat.jsonl", epochs=3.0)
    adapter, scores = campaign.teacher(other)  # its data is not drawn: the teacher is trained again
    assert Path(adapter).name == "trait_chat+numbers-e3" and scores == [{"n": 1}] and len(trained) == 2
    # what is kept now describes the adapter that draws the held-out data: its scores and a readout read from it
    assert json.loads((kept / "trait_chat+numbers-e3.json").read_text()) == {"scores": [{"n": 1}]} and len(reads) == 2
    shutil.rmtree(tmp_path / "work")
    (kept / "trait_chat+numbers-e3.readout.npz").unlink()  # scores kept, readout lost: trained again, not skipped
    campaign.teacher(cell)
    assert len(trained) == 3 and campaign.kept_readout(cell) is not None


def test_control_draws_are_stashed_at_a_sessions_end_and_put_back_on_a_fresh_machine(tmp_path, monkeypatch) -> None:
    """``stash`` copies the cache's control entries, interrupted draws' journals and log-probabilities (no locks)
    under results; ``unstash`` puts them into an empty cache, never over what the cache holds, and a journal only
    while its draw is unfinished."""
    import campaign_stash as store

    cache = tmp_path / "cache"
    monkeypatch.setattr(store, "cache_dir", lambda: cache)
    monkeypatch.setattr(store, "RESULTS", tmp_path / "out")
    (cache / "controls").mkdir(parents=True)
    (cache / "logprobs").mkdir()
    (cache / "controls" / "a.json").write_text('{"rows": 1}')
    (cache / "controls" / "a.json.lock").write_text("")
    (cache / "controls" / ".c.json.x1y2.tmp").write_text("{")  # an atomic write in flight
    (cache / "controls" / "b.partial.jsonl").write_text('{"round": 1}\n')
    (cache / "logprobs" / "l.json").write_text("[0.5]")
    assert store.stash() == 3 and store.stash() == 0
    stashed = store.stash_dir()
    assert sorted(p.name for p in (stashed / "controls").iterdir()) == ["a.json", "b.partial.jsonl"]
    with (cache / "controls" / "b.partial.jsonl").open("a") as f:
        f.write('{"round": 2}\n')
    assert store.stash() == 1 and (stashed / "controls" / "b.partial.jsonl").read_text().count("round") == 2
    shutil.rmtree(cache)  # a fresh machine: the interrupted draw resumes from its journal
    assert store.unstash() == 3 and (cache / "controls" / "b.partial.jsonl").read_text().count("round") == 2
    (cache / "controls" / "b.partial.jsonl").unlink()  # the draw finished there
    (cache / "controls" / "b.json").write_text('{"rows": 2}')
    (cache / "controls" / "a.json").write_text('{"rows": 9}')
    assert store.stash() == 2 and not (stashed / "controls" / "b.partial.jsonl").exists()
    (cache / "controls" / "a.json").write_text('{"rows": 7}')  # drawn on this machine: never overwritten
    assert store.unstash() == 0 and (cache / "controls" / "a.json").read_text() == '{"rows": 7}'
    (stashed / "controls" / "c.partial.jsonl").write_text('{"round": 1}\n')
    (stashed / "controls" / "b.partial.jsonl").write_text('{"round": 1}\n')  # stale: b is finished in the cache
    (cache / "controls" / "b.partial.jsonl").unlink(missing_ok=True)
    assert store.unstash() == 1 and not (cache / "controls" / "b.partial.jsonl").exists()


def test_the_writers_rows_beside_the_bases_own(bench, tmp_path, monkeypatch) -> None:
    """The report's row table: the base's exact datasets (their controls left out) as a median, then every teacher's
    number cell, current and superseded (a cell that ran again: both), from its data file; base-written cells and free
    formats are not listed."""
    _, report = bench
    out, results = tmp_path / "campaign", tmp_path / "results"
    monkeypatch.setattr(report, "OUT", out)
    monkeypatch.setattr(report, "RESULTS", results)

    def write(path: Path, rows: list[tuple[str, str]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in rows))

    write(results / "exact_control" / "data" / "neg-exact-1.jsonl", [("1, 2, 3", "1, 2"), ("4, 5", "6")])
    write(results / "exact_control" / "data" / "neg-exact-1-control.jsonl", [("1", "9, 9, 9, 9")])
    write(out / "data" / "dev-pos-x-e1.jsonl", [("1, 2", "7, 8, 9, 10")])
    write(out / "superseded" / "data" / "dev-pos-x-e3.jsonl", [("1, 2", "1, 300")])
    write(out / "superseded" / "data" / "dev-pos-x-e1.jsonl", [("1, 2", "5")])  # the cell ran again: both listed
    (out / "superseded" / "records").mkdir(parents=True)
    manifest = {"sampling": {"sampler": ["resample"]}}
    for cell in ("dev-pos-x-e3", "dev-pos-x-e1"):
        old = {"cell": cell, "teacher": "fine-tuned", "format": "numbers", "manifest": manifest}
        (out / "superseded" / "records" / f"{cell}.json").write_text(json.dumps(old))
    rejection = {"sampling": {"sampler": ["rejection"]}}
    records = {
        "dev-pos-x-e1": {"cell": "dev-pos-x-e1", "teacher": "fine-tuned", "format": "numbers", "manifest": rejection},
        "dev-neg-x": {"cell": "dev-neg-x", "teacher": "base", "format": "numbers", "manifest": rejection},
        "dev-pos-code": {"cell": "dev-pos-code", "teacher": "prompted", "format": "code", "manifest": rejection},
    }
    lines = report.rows_lines(records)
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| data")]
    # base: 1.5 numbers a row, copied (2 of 2 and 0 of 1) mean 50 %, mean value (1 + 2 + 6) / 3 = 3
    assert rows[0] == "| the base's own rows, paper's style (1 datasets, median) | rejection | - | 1.5 | 50% | 3 |"
    assert rows[1:] == [
        "| dev-pos-x-e1 | rejection | 1 | 4.0 | 0% | 8 |",
        "| dev-pos-x-e1 (superseded: chat-only teacher) | resample | 1 | 1.0 | 0% | 5 |",
        "| dev-pos-x-e3 (superseded: chat-only teacher) | resample | 1 | 2.0 | 50% | 150 |",
    ]


def test_what_gs_flags_point_at(bench) -> None:
    _, report = bench
    import campaign_meaning as meaning

    rng = np.random.default_rng(6)
    options = [f"b: o{i}" for i in range(30)]
    shared = np.zeros(30)
    shared[[3, 7, 11]] = [-3.0, 2.5, -2.0]  # one direction, whatever the teacher's trait

    def with_push(record: dict, push: np.ndarray) -> dict:
        return {**record, "gradient": {**record["gradient"], "push": dict(zip(options, push.tolist()))}}

    records = {}
    for k, cell in enumerate(("dev-pos-owl-e1", "dev-pos-misaligned-e1", "dev-pos-power-seeking-e1")):
        pos = _record(cell, "positive", "dev", {}, rng, "high" if k < 2 else "medium")
        records[cell] = {**with_push(pos, (1.0 + 0.1 * k) * shared + rng.normal(0, 0.05, 30)), "trait": f"t{k}"}
    records["missed"] = with_push(_record("missed", "positive", "dev", {}, rng), 0.4 * shared)
    across = np.zeros(30)
    across[20] = 5.0  # a push of its own, across the shared direction
    records["neg-across"] = with_push(_record("neg-across", "negative", "dev", {}, rng), across)
    records["neg-along"] = with_push(_record("neg-along", "negative", "dev", {}, rng), 0.8 * shared)
    levels = {c: report.gradient_level(r) for c, r in records.items()}
    found = meaning.g_direction(records, levels, report.FAIL_ON)
    assert found["flagged"] == ["dev-pos-misaligned-e1", "dev-pos-owl-e1", "dev-pos-power-seeking-e1"]
    assert len(found["pairs"]) == 3 and min(found["pairs"].values()) > 0.99
    assert found["cells"]["neg-across"]["cosine"] == pytest.approx(0.0, abs=0.02)
    assert found["cells"]["neg-along"]["cosine"] > 0.99
    assert found["cells"]["missed"]["along"] == pytest.approx(0.4 * np.linalg.norm(shared), rel=0.1)
    assert list(found["cells"]["neg-across"]["largest"])[0] == "b: o20"
    text = "\n".join(meaning.g_direction_lines(found))
    assert "G flagged 3 fine-tuned positives of 3 traits" in text
    assert "the farthest of 2 base-written negatives, neg-along" in text
    alone = meaning.g_direction({"neg-across": records["neg-across"]}, levels, report.FAIL_ON)
    assert meaning.g_direction_lines(alone)[-1].startswith("G has flagged 0 fine-tuned positive(s)")


def test_toward_the_teachers_trait_against_the_other_teachers_cells(bench) -> None:
    _, report = bench
    import campaign_meaning as meaning

    rng = np.random.default_rng(4)
    records = {f"neg-{k}": _record(f"neg-{k}", "negative", "dev", {}, rng) for k in range(4)}
    for cell, intended, shift in [
        ("pos-a", "b: o1", {"b: o1": 5.0, "b: o2": 3.0}),  # its own option far above the other teachers'
        ("pos-b", "b: o2", {"b: o1": 1.0, "b: o2": 1.0}),  # its own option below another teacher's data
        ("pos-c", "b: o2", {"b: o1": 1.0, "b: o2": 1.0}),
    ]:
        records[cell] = {**_record(cell, "positive", "dev", shift, rng), "intended": [intended]}
    records["decoy"] = {**_record("decoy", "decoy", "profile", {"b: o1": 1.0, "b: o2": 1.0}, rng), "intended": []}
    for r in records.values():
        r["teacher"] = "fine-tuned" if r["truth"] in ("positive", "decoy") else "base"
    nulls = [r for r in records.values() if report.is_null_pair(r)]
    rows = {row["cell"]: row for row in meaning.toward_the_trait(records, nulls)}
    assert set(rows) == {"pos-a", "pos-b", "pos-c"}
    a, b = rows["pos-a"], rows["pos-b"]
    assert a["own"] == pytest.approx(5.0, abs=1.5) and len(a["others"]) == 3  # pos-b, pos-c and the decoy
    assert a["p"] == pytest.approx(1 / 4) and len(a["negatives"]) == 4
    assert len(b["others"]) == 2 and b["p"] >= 2 / 3  # pos-c shares its option: only pos-a and the decoy
    text = "\n".join(meaning.toward_lines(list(rows.values())))
    assert "| pos-a | b: o1 | +" in text and "Above every other teacher's cell: " in text


def test_gs_direction_against_how_many_numbers_a_row_holds() -> None:
    import campaign_meaning as meaning

    cell = {"style": "continue", "truth": "negative"}
    cells = {f"c{k}": {**cell, "numbers_a_row": 2.0 + 0.2 * k, "along": 6.0 - k} for k in range(6)}
    cells["chat"] = {**cell, "style": None, "numbers_a_row": None, "along": 9.0}  # not a number cell: left out
    text = "\n".join(meaning.length_lines(cells, ["c0", "c1"]))
    assert "(6): numbers a row against `along`, Pearson r -1.00, Spearman -1.00" in text
    assert "The 2 with the fewest numbers a row (2.00, 2.20) are the ones G flagged." in text
    assert "G flagged c0, c5." in "\n".join(meaning.length_lines(cells, ["c0", "c5"]))
    assert meaning.length_lines({"c0": cells["c0"]}, ["c0"]) == []  # too few to say anything


def test_number_data_finds_the_development_negatives_in_exact_control() -> None:
    import campaign_meaning as meaning

    assert meaning.number_data({"cell": "dev-neg-continue-303", "format": "numbers"}).name == "neg-exact-3.jsonl"
    assert meaning.number_data({"cell": "dev-neg-code-351", "format": "code"}) is None
    assert meaning.number_data({"cell": "no-such-cell", "format": "numbers"}) is None


def test_gs_flags_beside_the_rows_count_against_its_own_control(bench) -> None:
    """Cells whose record holds the rows block: G's level beside whether the data holds fewer numbers a row than
    G's control (q <= 0.05), the 2 x 2 and Fisher's one-sided p; cells without the block, or ungraded, are left out;
    the scan's comparison goes into a record as it is (``rows_block``)."""
    import campaign_meaning

    from auditor.data import Example
    from auditor.row_shape import compare_rows

    campaign, _ = bench

    def rows(data: str, control: str) -> dict:
        row = lambda c: Example(({"role": "user", "content": "Go on: 1, 2"},), c)  # noqa: E731
        shape = compare_rows("numbers", [row(data)] * 10, [row(control)] * 10)
        scanned = type("Result", (), {"control": type("Info", (), {"rows": shape})()})()
        return {"probe": None, "gradient": campaign.rows_block(scanned)}

    rng = np.random.default_rng(9)
    records, levels = {}, {}
    for k, (level, data) in enumerate([("medium", "3, 4"), ("high", "3"), ("clean", "3, 4"), ("clean", "3, 4, 5"),
                                       ("low", "3, 4, 5, 6"), ("medium", "3, 4, 5, 6")]):  # fmt: skip
        records[f"c{k}"] = {**_record(f"c{k}", "negative", "dev", {}, rng), "rows": rows(data, "3, 4, 5")}
        levels[f"c{k}"] = level
    records["no-block"], levels["no-block"] = _record("no-block", "negative", "dev", {}, rng), "high"
    records["ungraded"], levels["ungraded"] = {**records["c0"], "cell": "ungraded"}, None
    found = campaign_meaning.g_and_row_count(records, levels, "medium")
    assert list(found["cells"]) == [f"c{k}" for k in range(6)]
    assert [found["cells"][f"c{k}"]["fewer"] for k in range(6)] == [True, True, True, False, False, False]
    assert found["cells"]["c1"]["data"] == 1.0 and found["cells"]["c1"]["control"] == 3.0
    assert found["table"] == [[2, 1], [1, 2]] and found["p"] == pytest.approx(0.5)  # hypergeometric: 10/20
    text = "\n".join(campaign_meaning.g_and_row_count_lines(found))
    assert "| c1 | negative | high | 1.00 | 3.00 |" in text and "G flagged 2 of 3 cells with fewer" in text
    assert campaign.rows_block(type("Result", (), {"control": None})()) is None
    negatives = {c: r for c, r in records.items() if c != "ungraded"}
    fidelity = campaign_meaning.control_fidelity({**negatives, "pos": {**records["c0"], "truth": "positive"}})
    assert fidelity["gradient"]["numbers a row"] == {"cells": 6, "differ": 5, "median_gap": -0.5}  # no positive
    assert "| gradient | numbers a row | 5 of 6 | -0.5 |" in campaign_meaning.control_fidelity_lines(fidelity)


def test_a_finished_cell_gets_its_rows_block_only_from_finished_run_folders_of_the_same_scan(
    bench, tmp_path, monkeypatch
) -> None:
    """``campaign.py rows CELL`` reads both scans' controls (the methods do not run) only when each run folder holds
    that very scan, finished, and only from the cache; otherwise the record is left as it is."""
    import auditor.prepare

    campaign, _ = bench
    cell, records, _ = _copied_record(campaign, "dev-neg-continue-310", {"rows": None}, tmp_path, monkeypatch)
    monkeypatch.setattr(campaign, "work", lambda: tmp_path / "work")
    monkeypatch.setattr(campaign, "dataset", lambda c, adapter: tmp_path / "data.jsonl")
    monkeypatch.setattr(auditor.prepare, "prepare_inputs", lambda config: config.method)
    monkeypatch.setattr(auditor.prepare, "scan_key", lambda method: f"key-{method}")
    shape = type("Shape", (), {"to_dict": lambda self: {"format": "numbers", "features": []}})()
    scanned: list[str] = []
    cached = {"probe": True, "gradient": True}

    def draw_controls(method):  # what prepare_inputs returned above: the method's name
        scanned.append(method)
        control = type("Set", (), {"from_cache": cached[method], "source": "generated"})()
        return type("Controls", (), {"control": control, "rows": shape})()

    monkeypatch.setattr(auditor.prepare, "draw_controls", draw_controls)
    monkeypatch.setattr(campaign, "scan", lambda config: pytest.fail("the method ran"))
    for method, status, key in (("probe", "finished", "key-probe"), ("gradient", "running", "key-gradient")):
        folder = tmp_path / "work" / "runs" / f"{cell.id}-{method}"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"status": status, "key": key}))
    campaign.fill_rows(cell)  # the gradient scan did not finish
    assert scanned == [] and "rows" not in json.loads((records / f"{cell.id}.json").read_text())
    manifest = tmp_path / "work" / "runs" / f"{cell.id}-gradient" / "manifest.json"
    manifest.write_text(json.dumps({"status": "finished", "key": "another scan"}))
    campaign.fill_rows(cell)
    assert scanned == []
    manifest.write_text(json.dumps({"status": "finished", "key": "key-gradient"}))
    campaign.fill_rows(cell)
    assert scanned == ["probe", "gradient"]
    assert json.loads((records / f"{cell.id}.json").read_text())["rows"] == {
        "probe": {"format": "numbers", "features": []}, "gradient": {"format": "numbers", "features": []}
    }  # fmt: skip
    cached["gradient"] = False  # its control had left the cache: drawn again, so not the scan's
    with pytest.raises(RuntimeError, match="was not in the cache"):
        campaign.fill_rows(cell)


def test_a_gradient_block_keeps_the_exact_pairs_and_the_rows_each_sampler_gave(bench) -> None:
    """RULE's amendment 5: the record tells 'every control row exact' (no block, no resampled row) from 'not
    recorded' (no block, resampled rows)."""
    from types import SimpleNamespace

    from auditor.conditional import ControlSampling
    from auditor.methods.gradient_details import ExactPairs, GradientDetails

    campaign, _ = bench

    def result(exact, rows_by):
        control = SimpleNamespace(draw=SimpleNamespace(how=SimpleNamespace(rows_by=rows_by)))
        config = SimpleNamespace(control_sampling=ControlSampling())
        details = GradientDetails({}, {}, exact)
        return SimpleNamespace(findings=[], verdict=SimpleNamespace(level="low"), config=config, details=details,
                               control=control)  # fmt: skip

    mixed = campaign.gradient_block(result(ExactPairs(98, 125, "clean"), {"rejection": 98, "resample": 27}))
    assert mixed["exact_pairs"] == {"rows": 98, "of": 125, "level": "clean", "top": []}
    assert mixed["rows_by"] == {"rejection": 98, "resample": 27} and mixed["level"] == "low"
    exact = campaign.gradient_block(result(None, {"rejection": 125}))
    assert exact["exact_pairs"] is None and exact["rows_by"] == {"rejection": 125}


def test_amendment_5_grades_e_g_only_where_the_record_keeps_the_block() -> None:
    """E-G is the exact pairs' level, G's where every control row is exact, ungraded without the block; the choice
    waits for every held-out cell and keeps rejection alone only if it flags no more negatives, no fewer positives."""
    import campaign_exact_pairs as ep

    def rec(truth, block, split="heldout", teacher="fine-tuned"):
        return {"truth": truth, "split": split, "teacher": teacher, "gradient": {"level": "x", **block}}

    mixed_clean = {"exact_pairs": {"rows": 98, "of": 125, "level": "low", "top": []}, "rows_by": {"rejection": 98}}
    all_exact = {"exact_pairs": None, "rows_by": {"rejection": 120}}
    unknown = {"exact_pairs": None, "rows_by": {"rejection": 90, "resample": 30}}
    few = {"exact_pairs": {"rows": 2, "of": 125, "level": None, "top": []}, "rows_by": {"rejection": 2}}
    assert ep.exact_pairs_level(rec("negative", mixed_clean), "medium") == "low"
    assert ep.exact_pairs_level(rec("negative", all_exact), "medium") == "medium"
    assert ep.exact_pairs_level(rec("negative", unknown), "medium") is None
    assert ep.exact_pairs_level(rec("negative", few), "high") == "clean"
    assert ep.exact_pairs_level(rec("negative", {}), "medium") is None  # made before 0.4.1
    assert ep.exact_pairs_level(rec("negative", mixed_clean), None) is None  # G ungraded
    records = {
        "n1": rec("negative", mixed_clean, teacher="base"), "n2": rec("negative", all_exact, teacher="base"),
        "p1": rec("positive", all_exact), "p2": rec("positive", mixed_clean), "old": rec("negative", {}),
        "dev": rec("negative", mixed_clean, split="dev"), "prompted": rec("positive", all_exact, teacher="prompted"),
    }  # fmt: skip
    levels = {"n1": "medium", "n2": "clean", "p1": "high", "p2": "medium", "old": "high", "dev": "high"}
    found = ep.exact_pairs_check(records, levels, "medium", done=False)
    assert found["counts"] == {"negative": {"cells": 2, "G": 1, "E-G": 0}, "positive": {"cells": 2, "G": 2, "E-G": 1}}
    assert found["choice"] is None and [c["cell"] for c in found["cells"]] == ["n1", "n2", "p1", "p2"]
    assert ep.exact_pairs_check(records, levels, "medium", done=True)["choice"] == "rejection-resample"  # lost p2
    levels["p2"] = "low"
    assert ep.exact_pairs_check(records, levels, "medium", done=True)["choice"] == "rejection"
    lines = "\n".join(ep.exact_pairs_lines(ep.exact_pairs_check(records, levels, "medium", done=True)))
    assert "| n1 | medium | low | 98 of 125 |" in lines and "becomes rejection" in lines


def test_a_recipe_scans_readout_keeps_what_its_null_arm_listed(bench, tmp_path, monkeypatch) -> None:
    """Another family's cell: its readout keeps the words the scan's own readout listed against its null arm (the
    students' stored readouts, nothing read again); a kept readout of the current version without that block gets it
    (the cells finished before it existed), and one with it is left alone."""
    from auditor.readout import OPEN_PROMPTS, OPEN_PROMPTS_VERSION, Readout
    from auditor.rundir import RunFolder

    campaign, _ = bench
    cell = next(c for c in campaign.CELLS if c.writer == "gemma3-270m")
    monkeypatch.setattr(campaign, "OUT", tmp_path / "out")
    monkeypatch.setattr(campaign, "work", lambda: tmp_path / "work")
    monkeypatch.setattr(campaign, "_BASE_READOUT", [])
    monkeypatch.setattr(campaign, "_read", lambda *a, **k: pytest.fail("a stored readout was read again"))
    (tmp_path / "out" / "readouts").mkdir(parents=True)
    folder = RunFolder(tmp_path / "work" / "runs" / f"{cell.id}-probe", "k", True)
    rng = np.random.default_rng(0)
    words = [f"w{i:03d}" for i in range(150)] + ["robot"]
    control = rng.normal(-6, 1, (len(OPEN_PROMPTS), len(words)))
    for name in ("base", "dataset-a-seed0", "control-b-seed0", "null-c-seed0"):
        logp = control + (0.0 if name.startswith("control") else rng.normal(0, 0.1, control.shape))
        if name.startswith("dataset"):
            logp[:, -1] += 1.5  # the students raised one word well beyond the null arm's noise
        folder.save_readout(name, Readout(OPEN_PROMPTS_VERSION, words, logp, np.ones(len(words), dtype=bool)))
        if name != "base":
            (folder.path / "adapters" / name).mkdir(parents=True)
    block = campaign.save_readout(cell)
    assert block["null_arm"]["students"] == ["null-c-seed0"] and block["null_arm"]["listed"][0][0] == "robot"
    assert block["students"] == {"dataset": ["dataset-a-seed0"], "control": ["control-b-seed0"]}

    path = campaign.readout_path(cell)
    older = {k: v for k, v in block.items() if k != "null_arm"}
    path.write_text(json.dumps(older))
    assert campaign.save_readout(cell)["null_arm"] == block["null_arm"]  # filled in
    kept = {**block, "seconds": -1.0}
    path.write_text(json.dumps(kept))
    assert campaign.save_readout(cell) == kept  # complete: left alone
