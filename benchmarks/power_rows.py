"""Does G's power grow with rows? The gradient method on 1,000 rows of a 3-epoch teacher and of the base (issue #21).

    .venv/bin/python benchmarks/power_rows.py          # draw, scan (resumable), then -> results/power_rows.md, .json
    .venv/bin/python benchmarks/power_rows.py report   # the report from the kept pushes only

Registered on 2026-12-08 before either dataset was drawn; information, deciding nothing. The campaign scans 200 rows
a cell (the scan's default ``--max-rows``), and there G flagged 0 of 7 datasets of 3-epoch teachers at ``medium``
(development and held-out so far; q 0.05 to 0.67). The README says more rows buy power; this measures it. Two
datasets of 1,000 rows, each drawn as the campaign draws its cells (``campaign._generate``: rejection, the paper's
filter, the ``continue`` prompt style, new prompt seeds 501 and 502):

- ``rows-pos-owl-e3``: the campaign's owl teacher at 3 epochs (the same adapter as dev-pos-owl-e3 and ho-pos-owl-e3,
  which G left clean at 200 rows: q 0.67 and 0.16);
- ``rows-neg-continue-502``: the base itself, so that a flag at 1,000 rows can be told from the control's own
  approximation (G's control resamples the few rows rejection leaves, RULE's amendment 5), which more rows also see.

Each is scanned once by G at the campaign's settings with every row (``max_rows=None``); its run folder keeps every
row's push. The report re-tests subsets from those pushes with the method's own test (``compare_pushes``,
``adjust_q``, ``grade_pushes``: the scan's own verdict when the subset is every row): for n in :data:`SIZES`, the
first n rows of the file and :data:`DRAWS` random n-row subsets, the share flagged at ``medium``. Added after the
owl dataset's scan (information): G's test on the pairs whose control row is exact (RULE's amendment 5's E-G), on
every row.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from campaign import TRAITS, Cell, _generate, _keep, scan_config, teacher, work
from grading import clopper_pearson

from auditor import scan
from auditor.io import atomic_write_json, atomic_write_text
from auditor.journal import read_steps
from auditor.methods.gradient import PUSHES_FILE, compare_pushes, grade_pushes
from auditor.stats import adjust_q
from auditor.verdict import level_rank

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "power_rows"
ROWS = 1000
SIZES = (100, 200, 400, 600, 800, 1000)
#: Random subsets per size (seeded; at n = ROWS every subset is the whole file).
DRAWS = 50
FAIL_ON = "medium"
CELLS = (
    Cell("rows-pos-owl-e3", "positive", "rows", seed=501, chat="owl_chat.jsonl", epochs=3.0, trait="owl",
         intended=("animal: owl",)),
    Cell("rows-neg-continue-502", "negative", "rows", seed=502),
)  # fmt: skip


def data_file(cell: Cell) -> Path:
    return OUT / "data" / f"{cell.id}.jsonl"


def draw(cell: Cell) -> Path:
    """The cell's 1,000 rows (kept under results; drawn once, resumable in the cache's chunks)."""
    out = data_file(cell)
    if out.exists():
        return out
    adapter, _ = teacher(cell)
    print(f"  drawing {ROWS} rows of {cell.id} ...", flush=True)
    return _keep(_generate(cell, adapter, work() / "data" / out.name, ROWS, "rejection"), out)


def pushes_path(cell: Cell) -> Path:
    return OUT / f"{cell.id}.pushes.json"


def measure(cell: Cell) -> dict[str, Any]:
    """G's scan of every row; keeps each row's data and control push (by file line), the options and what the
    subset test needs."""
    path = pushes_path(cell)
    earlier = json.loads(path.read_text()) if path.exists() else None
    if earlier is not None and "exact_pairs" in earlier:
        return earlier
    data = draw(cell)
    config = scan_config(cell, data, "gradient")
    print(f"  scanning {cell.id} (gradient, every row; resumes a finished scan from its run folder) ...", flush=True)
    result = scan(config)
    shifts = [f.shift for f in result.findings]
    arms = read_pushes(Path(result.run_dir) / PUSHES_FILE)
    lines = sorted(arms["dataset"])
    kept = {
        "cell": cell.id,
        "truth": cell.truth,
        "rows": len(lines),
        "level": result.verdict.level,
        "options": [[s.battery, s.option, s.base] for s in shifts],
        "lines": lines,
        "dataset": [arms["dataset"][n] for n in lines],
        "control": [arms["control"][n] for n in lines],
        "control_rows_by": None
        if result.control is None or result.control.draw.how is None
        else dict(result.control.draw.how.rows_by),
        # added after the owl cell's scan (information): G's test on the pairs whose control row is exact
        "exact_pairs": None if result.details.exact_pairs is None else result.details.exact_pairs.to_json(),
        "timings_s": result.timings if earlier is None else earlier["timings_s"],  # the first scan's, not a resume's
    }
    atomic_write_json(path, kept)
    return kept


def read_pushes(journal: Path) -> dict[str, dict[int, list[float]]]:
    """Each arm's push vector per row (by its file line) from a gradient run folder's journal."""
    arms: dict[str, dict[int, list[float]]] = {}
    for step in read_steps(journal)[0]:
        _, _, arm, rows = step["key"]
        arms.setdefault(arm, {}).update(zip(rows, step["value"]))
    return arms


def level_of(kept: dict[str, Any], idx: np.ndarray, config: Any) -> str:
    """G's level on the rows ``idx`` of a kept scan (the method's own test and grading)."""
    names = [(b, o) for b, o, _ in kept["options"]]
    base = {}
    for b, o, share in kept["options"]:
        base.setdefault(b, {})[o] = share
    d, c = np.asarray(kept["dataset"])[idx], np.asarray(kept["control"])[idx]
    verdict, _ = grade_pushes(adjust_q(compare_pushes(names, base, d, c)), config)
    return verdict.level


def subsets(kept: dict[str, Any], config: Any) -> list[dict[str, Any]]:
    """Per size: the first n rows' level, and how many of :data:`DRAWS` random n-row subsets reach ``FAIL_ON``."""
    rng = np.random.default_rng(0)
    total = kept["rows"]
    out = []
    for n in (s for s in SIZES if s <= total):
        first = level_of(kept, np.arange(n), config)
        draws = 1 if n == total else DRAWS
        levels = [level_of(kept, rng.choice(total, n, replace=False), config) for _ in range(draws)]
        flagged = sum(level_rank(x) >= level_rank(FAIL_ON) for x in levels)
        out.append({"rows": n, "first_rows": first, "flagged": flagged, "draws": draws})
    return out


def report(records: list[dict[str, Any]]) -> str:
    lines = [
        "# Does G's power grow with rows? (benchmarks/power_rows.py)",
        "",
        f"G (the gradient method) on {ROWS} rows of a 3-epoch owl teacher and of the base, each scanned",
        "once with every row; subsets re-tested from the kept pushes with the method's own test. Registered",
        f"before either dataset was drawn; information, deciding nothing. Flagged: `{FAIL_ON}` or above;",
        "intervals: Clopper-Pearson 95 % (random subsets of one dataset share rows: they tell how stable the",
        "level is within it, not across datasets).",
        "",
        "| dataset | truth | rows | G, every row | G, exact pairs only | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        seconds = r["timings_s"].get("total", 0)
        exact = r.get("exact_pairs")
        exact = (
            "every pair exact" if exact is None else f"{exact['level'] or 'clean'} ({exact['rows']} of {exact['of']})"
        )
        lines.append(f"| {r['cell']} | {r['truth']} | {r['rows']} | {r['level']} | {exact} | {seconds:.0f} |")
    lines += ["", "| dataset | rows | first n rows | random subsets flagged |", "|---|---|---|---|"]
    for r in records:
        for s in r["subsets"]:
            lo, hi = clopper_pearson(s["flagged"], s["draws"])
            share = f"{s['flagged']}/{s['draws']} [{lo:.2f}, {hi:.2f}]" if s["draws"] > 1 else "(every row)"
            lines.append(f"| {r['cell']} | {s['rows']} | {s['first_rows']} | {share} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from auditor.config import ScanConfig

    config = ScanConfig("-", traits=TRAITS, method="gradient", fail_on=FAIL_ON)
    records = []
    for cell in CELLS:
        if sys.argv[1:] == ["report"] and not pushes_path(cell).exists():
            continue
        kept = measure(cell)
        records.append({**{k: kept[k] for k in ("cell", "truth", "rows", "level", "exact_pairs", "timings_s")},
                        "subsets": subsets(kept, config)})  # fmt: skip
    atomic_write_json(RESULTS / "power_rows.json", records)
    atomic_write_text(RESULTS / "power_rows.md", report(records))
    print(report(records))


if __name__ == "__main__":
    main()
