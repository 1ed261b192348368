"""Scan the example datasets at the default budget and record verdicts, shifts and stage times.

    .venv/bin/python benchmarks/example_verdicts.py            # ~10 min on 2 CPU cores

Every scan runs cold: in a fresh cache folder that shares only the models (so no control rows, students
or scores are reused), which is what a user's first scan costs. Writes
``benchmarks/results/example_verdicts.{json,md}``. This is the check behind the README's claim that the
owl example is flagged and the clean example passes at the default budget.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import auditor
from auditor.io import atomic_write_json, atomic_write_text, cache_dir

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "results"
CASES = [
    ("owl (fine-tuned teacher)", ROOT / "examples" / "data" / "owl_numbers.jsonl", "flag"),
    ("clean (base, other prompts)", ROOT / "examples" / "data" / "clean_numbers.jsonl", "pass"),
]


def main() -> None:
    rows = []
    models = cache_dir() / "models"
    saved = os.environ.get("SUBAUDIT_CACHE")
    for name, path, expected in CASES:
        with tempfile.TemporaryDirectory(prefix="subaudit-cold-") as cold:
            (Path(cold) / "models").symlink_to(models, target_is_directory=True)
            os.environ["SUBAUDIT_CACHE"] = cold
            start = time.perf_counter()
            result = auditor.scan(auditor.ScanConfig(str(path)))
            wall = time.perf_counter() - start
        top = sorted(result.findings, key=lambda f: -f.shift.shift)[:5]
        rows.append(
            {
                "case": name,
                "file": str(path.relative_to(ROOT)),
                "expected": expected,
                "level": result.verdict.level,
                "exit_code": result.exit_code,
                "ok": (result.exit_code == 1) == (expected == "flag"),
                "summary": result.verdict.summary(),
                "top_rising": [f.headline() for f in top],
                "detectable_shift_pp": round(result.verdict.detectable_shift, 2),
                "timings_s": result.timings,
                "wall_s": round(wall, 1),
                "budget": {"rows": result.dataset.rows_used, "seeds": result.config.seeds},
            }
        )
        print(json.dumps(rows[-1], indent=2), flush=True)
    if saved is None:
        os.environ.pop("SUBAUDIT_CACHE", None)
    else:
        os.environ["SUBAUDIT_CACHE"] = saved
    atomic_write_json(OUT / "example_verdicts.json", rows)
    lines = [
        "# Example verdicts at the default budget",
        "",
        "| case | expected | level | exit | top rising options | rows x seeds | cold wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['expected']} | {r['level']} | {r['exit_code']} | "
            f"{'<br>'.join(r['top_rising'][:3])} | {r['budget']['rows']} x {r['budget']['seeds']} | {r['wall_s']} |"
        )
    atomic_write_text(OUT / "example_verdicts.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
