"""Too little data to judge (issue #23, item 6): below which row count does a default scan's false-alarm rate stop
being what it says?

    .venv/bin/python benchmarks/small_data.py run [--worker 0/2]   # resumable; records are committed
    .venv/bin/python benchmarks/small_data.py report                # -> benchmarks/results/small_data.md

Null datasets: disjoint subsets of the base's own exact number datasets (``benchmarks/results/exact_control/data``,
``neg-exact-1`` and ``-2``: 378 rows), ``REPS`` subsets of each size in ``ROW_COUNTS``. Each is scanned the way a user
would scan it (``auditor.scan`` with the defaults; only the run folder is set, ``min_rows=1``: the floor this measures
is off, and the open-vocabulary readout is off: it sets no level), so every flag is a false alarm. ``RULE`` below was
committed before any cell ran; the minimum it gives becomes ``--min-rows``' default.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "small_data"
SOURCES = [HERE / "results" / "exact_control" / "data" / f"neg-exact-{k}.jsonl" for k in (1, 2)]
ROW_COUNTS = (1, 3, 10, 30)
REPS = 8

RULE = """Pre-registered (committed before any small_data cell ran).
For each row count, REPS = 8 null scans with the defaults. A count is *calibrated* when at most 1 of its 8 scans is
flagged at --fail-on medium and at most 2 at --fail-on low (a scan whose findings hold no level is not flagged).
The minimum is the smallest tested count (1, 3, 10, 30) that is calibrated together with every larger tested count;
it becomes the default of --min-rows. If 30 is not calibrated, no tested count qualifies: the default stays at the
budget planner's floor (40 rows) and the README says that below the measured counts nothing was calibrated. The
closing note reports every count's flags with Clopper-Pearson 95 % intervals."""


def cells() -> list[tuple[int, int]]:
    """(row count, repetition), the small counts first."""
    return [(n, r) for n in ROW_COUNTS for r in range(REPS)]


def subsets(seed: int = 0) -> dict[tuple[int, int], list[str]]:
    """Every cell's rows: disjoint across all cells, drawn from the pooled source lines in a seeded order."""
    lines = [ln for path in SOURCES for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    random.Random(seed).shuffle(lines)
    out, at = {}, 0
    for n, r in cells():
        if at + n > len(lines):
            raise ValueError(f"{len(lines)} source rows are too few for every cell (need {sum(ROW_COUNTS) * REPS})")
        out[(n, r)] = lines[at : at + n]
        at += n
    return out


def record_path(n: int, r: int) -> Path:
    return OUT / "records" / f"rows{n:03d}-rep{r}.json"


def run_cell(n: int, r: int, rows: list[str]) -> dict[str, Any]:
    from auditor.config import ScanConfig
    from auditor.generate import manifest_path
    from auditor.io import atomic_write_json, cache_dir
    from auditor.pipeline import scan

    path = record_path(n, r)
    if path.exists():
        return json.loads(path.read_text())
    data = cache_dir() / "bench" / "small_data" / f"rows{n:03d}-rep{r}.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    shutil.copy(manifest_path(SOURCES[0]), manifest_path(data))  # how the rows were sampled (the decoding check)
    run_dir = str(cache_dir() / "bench" / "small_data" / "runs" / data.stem)
    # the floor this measures, off; the open-vocabulary readout too: it sets no level, and it was half of a small
    # cell's time (rows001-rep0, the one cell that ran with it: 189 of 410 s)
    result = scan(ScanConfig(str(data), run_dir=run_dir, min_rows=1, method_args={"discover": False}))
    levels = [f.level for f in result.findings if f.level]
    record = {
        "rows": n, "rep": r, "rows_used": result.dataset.rows_used, "level": result.verdict.level,
        "flagged_medium": result.verdict.level in ("medium", "high"),
        "flagged_low": result.verdict.level in ("low", "medium", "high"), "levels": levels,
        "timings_s": result.timings,
    }  # fmt: skip
    atomic_write_json(path, record)
    return record


def load_records() -> list[dict[str, Any]]:
    """The finished cells' records (committed under ``results/small_data/records``)."""
    return [json.loads(p.read_text()) for p in sorted((OUT / "records").glob("*.json"))]


def minimum(records: list[dict[str, Any]]) -> int | None:
    """The RULE's minimum row count from the finished records (``None``: no tested count qualifies)."""
    ok = {}
    for n in ROW_COUNTS:
        rs = [x for x in records if x["rows"] == n]
        ok[n] = sum(x["flagged_medium"] for x in rs) <= 1 and sum(x["flagged_low"] for x in rs) <= 2
    for n in ROW_COUNTS:
        if all(ok[m] for m in ROW_COUNTS if m >= n):
            return n
    return None


def report(records: list[dict[str, Any]]) -> str:
    """``results/small_data.md``: per row count, the null scans finished and flagged (Clopper-Pearson 95 %)."""
    from grading import clopper_pearson

    done = len(records) == len(cells())
    lines = [
        "# Too little data to judge (benchmarks/small_data.py)",
        "",
        "Null datasets (disjoint subsets of base-written exact number rows), each scanned with the defaults except "
        "two, both off: the floor itself and the readout (it sets no level); every flag is a false alarm. The rule, "
        "committed before any cell ran:",
        "",
        *[f"> {line}" if line else ">" for line in RULE.splitlines()],
        "",
        "| rows | scans finished | flagged at medium | 95 % interval | flagged at low | 95 % interval |",
        "|---|---|---|---|---|---|",
    ]
    for n in ROW_COUNTS:
        rs = [x for x in records if x["rows"] == n]
        if not rs:
            lines.append(f"| {n} | 0 of {REPS} | | | | |")
            continue
        med, low = sum(x["flagged_medium"] for x in rs), sum(x["flagged_low"] for x in rs)
        cm, cl = clopper_pearson(med, len(rs)), clopper_pearson(low, len(rs))
        lines.append(
            f"| {n} | {len(rs)} of {REPS} | {med} | [{cm[0]:.2f}, {cm[1]:.2f}] | {low} | [{cl[0]:.2f}, {cl[1]:.2f}] |"
        )
    verdict = (
        f"The rule's minimum: **{minimum(records)}** row(s), the default of `--min-rows` "
        "(`auditor/row_floor.py`; were no tested count to qualify, the rule would have kept 40)."
        if done
        else f"{len(records)} of {len(cells())} cells finished: the rule is applied when all have."
    )
    return "\n".join([*lines, "", verdict, ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--worker", default="0/1", help="I/N: every N-th cell starting at I")
    sub.add_parser("report")
    args = ap.parse_args()
    if args.command == "run":
        index, count = (int(x) for x in args.worker.split("/"))
        rows = subsets()
        for n, r in cells()[index::count]:
            run_cell(n, r, rows[(n, r)])
    records = load_records()
    done = len(records) == len(cells())
    (HERE / "results" / "small_data.md").write_text(report(records), encoding="utf-8")
    tail = f"; minimum {minimum(records)}" if done else ""
    print(f"small_data: {len(records)} of {len(cells())} cells finished{tail}")


if __name__ == "__main__":
    main()
