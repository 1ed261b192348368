"""How often the open-vocabulary readout lists a word on base-written data when its noise is the null arm (issue #24).

    .venv/bin/python benchmarks/readout_null_arm.py [CELL ...]   # -> results/readout_null_arm.md and .json

The campaign grades every readout against a profile's null pairs (``campaign_readouts.py``), the noise a scan of the
embedded default gets from the shipped profile. A scan with no profile (any other base until ``calibrate`` has made
one, or ``--calibration none``) takes the readout's noise from its null arm instead: one more student on a second
draw of the base's own rows, pooled across words (``auditor.discover.null_arm_test``). On the campaign's only scan
with a null arm (ho-gemma-neg-1, Gemma-written data with Gemma's null rows) that readout listed 5 words. This script
scans held-out base-written negatives of the campaign again with the probe and a null arm (the campaign's settings
otherwise, a run folder of its own) and keeps what the readout listed. Resumable: one JSON per cell.

Those scans listed 180 words (ho-neg-continue-341) with a normal tail, the test before 2026-12-07; the null arm's
own z had tails far heavier than the normal's. ``report`` tests every kept cell's students again with the current
test (``auditor.discover.analyse`` on the readouts the scan stored in its run folder: a Student t fitted to the null
arm's own z) and writes both listings:

    .venv/bin/python benchmarks/readout_null_arm.py report
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from campaign import CELLS, dataset, listed_words, scan_config, work
from grading import clopper_pearson

from auditor import scan
from auditor.io import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "readout_null_arm"
#: Held-out base-written negatives, one per kind of data (the campaign's cell order within each).
DEFAULT_CELLS = ("ho-neg-continue-341", "ho-neg-random-323", "ho-neg-range-333", "ho-neg-code-353", "ho-neg-chat-363")


def measure(cell_id: str) -> dict:
    """The cell's probe scan with a null arm: what the readout listed, its noise, the verdict and the time."""
    path = OUT / f"{cell_id}.json"
    if path.exists():
        return json.loads(path.read_text())
    cell = next(c for c in CELLS if c.id == cell_id)
    if cell.truth != "negative" or cell.writer is not None:
        raise SystemExit(f"{cell_id}: not a base-written negative")
    config = scan_config(cell, dataset(cell, None), "probe")
    config = replace(config, null_arm=True, run_dir=str(run_folder(cell_id)))
    print(f"  scanning {cell_id} with a null arm ...", flush=True)
    start = time.perf_counter()
    result = scan(config)
    found = result.details.discover
    record = {
        "cell": cell_id,
        "level": result.verdict.level,
        "words_tested": found.words_tested,
        "noise": found.noise,
        "listed": listed_words(found),
        "top": [[w.word, round(w.z, 2)] for w in found.words[:5] if w.z is not None],
        "readout_s": round(found.seconds, 1),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    atomic_write_json(path, record)
    return record


def run_folder(cell_id: str) -> Path:
    return work() / "runs" / f"{cell_id}-probe-null-arm"


def retest(record: dict) -> dict:
    """The cell's record with ``now``: what the current test lists from the students' stored readouts (``None`` when
    its run folder is gone)."""
    from auditor.discover import analyse
    from auditor.rundir import read_readout

    folder = run_folder(record["cell"]) / "readouts"
    reads = {p.stem.split("-")[0]: read_readout(p) for p in sorted(folder.glob("*.npz"))}
    if not {"base", "dataset", "control", "null"} <= set(reads):
        return {**record, "now": record.get("now")}
    found = analyse(reads["base"], [reads["dataset"]], [reads["control"]], [reads["null"]])
    return {**record, "now": {"listed": listed_words(found), "noise": found.noise}}


def report(records: list[dict]) -> str:
    then = sum(1 for r in records if r["listed"])
    now = [r for r in records if r.get("now") is not None]
    listing = sum(1 for r in now if r["now"]["listed"])
    lines = [
        "# The readout's null-arm noise on base-written data (benchmarks/readout_null_arm.py)",
        "",
        "Base-written negatives of the campaign scanned again with the probe and a null arm (no profile). Cells whose",
        f"readout listed a word: with the normal tail the scans used, **{then} of {len(records)}** "
        f"{_interval(then, len(records))}; with the current test (a Student t fitted to the null arm's own z), "
        f"**{listing} of {len(now)}** {_interval(listing, len(now))} (Clopper-Pearson 95 %). The same cells against "
        "the campaign's profile pool: `campaign_readouts.md`.",
        "",
        "| cell | verdict | words tested | listed, normal tail | listed now (lift nats, z, q) | the t's fit "
        "| top 5 by z | readout s | scan s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        then_words = f"{len(r['listed'])}: " + ", ".join(w for w, *_ in r["listed"][:6]) if r["listed"] else "-"
        if r.get("now") is None:
            now_words, fit = "(run folder gone)", "-"
        else:
            now_words = ", ".join(f"{w} ({lift:+.2f}, {z:.1f}, {q:.2g})" for w, lift, z, q in r["now"]["listed"])
            fit = r["now"]["noise"].split("own z (", 1)[-1].split(";", 1)[0]
        top = ", ".join(f"{w} {z:.1f}" for w, z in r["top"])
        lines.append(
            f"| {r['cell']} | {r['level']} | {r['words_tested']} | {then_words} | {now_words or '-'} | {fit} | {top} "
            f"| {r['readout_s']} | {r['wall_s']} |"
        )
    return "\n".join(lines) + "\n"


def _interval(k: int, n: int) -> str:
    if not n:
        return ""
    lo, hi = clopper_pearson(k, n)
    return f"[{lo:.2f}, {hi:.2f}]"


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    if sys.argv[1:] == ["report"]:
        records = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))]
    else:
        records = [measure(c) for c in (sys.argv[1:] or DEFAULT_CELLS)]
    records = [retest(r) for r in records]
    atomic_write_json(RESULTS / "readout_null_arm.json", records)
    atomic_write_text(RESULTS / "readout_null_arm.md", report(records))
    print(report(records))
