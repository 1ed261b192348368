"""G on the exact pairs alone, after the fact, on the campaign's finished random-style number negatives.

    .venv/bin/python benchmarks/exact_pairs_posthoc.py run [CELL ...]   # resumable; default: the 4 random-style cells
    .venv/bin/python benchmarks/exact_pairs_posthoc.py report           # -> results/exact_pairs_posthoc.md

On ho-neg-random-323 and -324 G's control (rejection-resample, 400 tries) importance-resampled 33 of 135 and 27 of
125 rows, and 324's control held longer lists than its data (4.26 against 3.09 numbers a row; G low). Those cells ran
before 0.4.1 recorded which rows were resampled, so their records have no ``exact_pairs`` block (RULE's amendment 5).
This scans each again with ``--control-sampler rejection`` (same seed, prompts and 400 tries): rejection's draws
are the first phase of rejection-resample's, so its rows are exactly the exact pairs, and the rows it leaves drop
out of both arms. Information only: these cells were seen before amendment 5 was written, so they decide nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from campaign import CELLS, data_path, scan_config

from auditor.io import atomic_write_json, atomic_write_text
from auditor.pipeline import scan

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "exact_pairs_posthoc.json"
DEFAULT = ["ho-neg-random-324", "ho-neg-random-323", "dev-neg-random-321", "dev-neg-random-322"]


def run(cell_id: str) -> dict[str, Any]:
    """The gradient scan of a finished cell's data against a rejection-only control (the exact pairs)."""
    cell = next(c for c in CELLS if c.id == cell_id)
    config = scan_config(cell, data_path(cell), "gradient")
    config = replace(
        config,
        control_sampling=replace(config.control_sampling, sampler="rejection"),
        run_dir=f"{config.run_dir}-rejection",
    )
    result = scan(config)
    record = json.loads((RESULTS / "campaign" / "records" / f"{cell_id}.json").read_text())
    ranked = sorted(result.findings, key=lambda f: f.shift.p)[:3]
    rows = result.control.rows.to_dict() if result.control and result.control.rows else None
    kept = result.control.draw.kept if result.control else None
    return {
        "cell": cell_id,
        "g_all_pairs": record["gradient"]["level"],
        "exact_level": result.verdict.level,
        "exact_pairs": kept,
        "rows": record["rows_used"],
        "top": [{"option": f.name, "push": round(f.shift.shift, 6), "q": round(f.shift.q, 6)} for f in ranked],
        "rows_block": rows,
        "control_s": result.timings.get("control"),
    }


def report(found: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# G on the exact pairs alone (random-style number negatives, after the fact)",
        "",
        "`benchmarks/exact_pairs_posthoc.py`: each cell's data scanned again by the gradient method with",
        "`--control-sampler rejection` (its rows are the exact pairs of the campaign's rejection-resample control).",
        "Information: these cells were seen before RULE's amendment 5, so they decide nothing.",
        "",
        "Numbers a row: data against control (q), over all pairs (the campaign's G scan) and over the exact pairs.",
        "",
        "| cell | G, all pairs | numbers a row, all pairs | exact pairs | G, exact pairs | numbers a row, exact pairs "
        "| most significant on exact pairs |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell, r in found.items():
        top = "; ".join(f"{t['option']} {t['push']:+.3g} (q {t['q']:.2g})" for t in r["top"])
        record = json.loads((RESULTS / "campaign" / "records" / f"{cell}.json").read_text())
        everything = _count_gap((record.get("rows") or {}).get("gradient"))
        lines.append(
            f"| {cell} | {r['g_all_pairs']} | {everything} | {r['exact_pairs']} of {r['rows']} | {r['exact_level']} "
            f"| {_count_gap(r['rows_block'])} | {top} |"
        )
    return "\n".join(lines) + "\n"


def _count_gap(rows_block: dict[str, Any] | None) -> str:
    """``data vs control (q)`` of the numbers a row in a rows block (``-`` without one)."""
    count = next((f for f in (rows_block or {}).get("features", []) if f["feature"] == "numbers a row"), None)
    return "-" if count is None else f"{count['data']:.2f} vs {count['control']:.2f} ({count['q']:.2g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["run", "report"])
    parser.add_argument("cells", nargs="*", default=DEFAULT)
    args = parser.parse_args()
    found = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.what == "run":
        for cell in args.cells:
            if cell in found:
                continue
            print(f"  {cell} ...", flush=True)
            found[cell] = run(cell)
            atomic_write_json(OUT, found)
    atomic_write_text(RESULTS / "exact_pairs_posthoc.md", report(found))
    sys.stdout.write(report(found))


if __name__ == "__main__":
    main()
