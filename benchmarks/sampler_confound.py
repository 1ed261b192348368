"""Do the campaign's positives move G and the probe because of their sampler? A check on data the base wrote itself.

    .venv/bin/python benchmarks/sampler_confound.py run       # resumable: data, then G, then the probe
    .venv/bin/python benchmarks/sampler_confound.py report    # -> benchmarks/results/sampler_confound.md

The fine-tuned teachers write a valid number list too rarely for rejection (0 of 16 pilot prompts in 400 tries), so
their data is importance-resampled, and with degenerate weights: effective sample size 1.2-1.3 of M = 4, against
1.75-1.9 when the base itself is resampled. Against its exact control G flagged high all 4 resampled cells (two owl
teachers, the French and pirate decoys) with push directions that correlate 0.95-0.99 with one another, and the
owl-e1 cell still high against a matched control (RULE's amendment 1 in campaign.py). Is that shared direction the
teachers' or the sampler's?

Data: SmolLM2-135M's own rows for the prompts of neg-exact-1 (= dev-neg-continue-301) drawn by the
format-constrained sampler alone (``generate --constrain``: importance resampling with M = 1, the limit of
degenerate weights). It carries no trait. G and the probe scan it against neg-exact-1's exact control file (a second
rejection draw of the same prompts), so the two arms differ by the sampler only.

Pre-registered reading (committed before the scans ran):
If G flags this data at medium and its push direction correlates >= 0.9 with the mean push direction of the 4
resampled cells against their exact controls, that direction is the sampler's: G's flags on resampled positives,
matched control or not, are not evidence of a trait, and G's power cannot be graded on the campaign's resampled
positives (the closing note says so; the positives need data drawn exactly). If the calibrated probe (P-t or P-a,
graded against the development profile as the campaign grades its cells) flags it, the same holds for the probe's
power on resampled positives; if it does not, its sum of squared shifts is reported beside the exact-vs-exact floor
of the same prompts (neg-exact-1 against its exact control, one seed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from number_rows import row_stats

from auditor.config import ScanConfig
from auditor.generate import GenerateConfig, generate, manifest_path
from auditor.io import atomic_write_json, atomic_write_text, cache_dir
from auditor.pipeline import scan

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "sampler_confound"
#: The campaign cells drawn by importance resampling whose G pushes define the shared direction.
RESAMPLED = ["dev-pos-owl-e1", "dev-pos-owl-e3", "decoy-french", "decoy-pirate"]
#: The pre-registered correlation above which the shared direction is the sampler's.
SAME_DIRECTION = 0.9


def data() -> Path:
    """The base's constrained-sampler rows for neg-exact-1's prompts (written once, kept with its manifest)."""
    import exact_control

    out = OUT / "neg-constrained-1.jsonl"
    if out.exists():
        return out
    source = exact_control.dataset(1)
    tmp = cache_dir() / "bench" / "sampler_confound" / out.name
    tmp.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {out.name} (constrained) ...", flush=True)
    rows = sum(1 for line in source.read_text(encoding="utf-8").splitlines() if line.strip())
    generate(
        GenerateConfig(
            out=str(tmp), prompts_from=str(source), constrain=True, evil_filter=True, overwrite=True,
            seed=exact_control.SEED0 + 1 + 700, rows=rows,
        )
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(manifest_path(tmp), manifest_path(out))
    shutil.copy(tmp, out)
    return out


def record_path(method: str) -> Path:
    return OUT / "records" / f"{method}.json"


def run_scan(method: str) -> dict[str, Any]:
    """Scan the constrained rows by ``method`` against neg-exact-1's exact control file (the campaign's batteries)."""
    import exact_control
    from campaign import TRAITS

    out = record_path(method)
    if out.exists():
        return json.loads(out.read_text())
    control = exact_control.exact_control_path(1)
    if not control.exists():
        raise SystemExit(f"{control} is missing: this check reuses neg-exact-1's exact control, it draws none")
    print(f"scanning neg-constrained-1 ({method}, neg-exact-1's exact control) ...", flush=True)
    start = time.perf_counter()
    result = scan(
        ScanConfig(
            str(data()), traits=TRAITS, max_rows=None, method=method, null_arm=False, calibration="none",
            control=str(control), run_dir=str(cache_dir() / "bench" / "sampler_confound" / "runs" / method),
            **({"method_args": {"discover": False}} if method == "probe" else {}),
        )
    )  # fmt: skip
    findings = sorted(result.findings, key=lambda f: f.name)
    record = {
        "method": method,
        "level": result.verdict.level,
        "rows_used": result.dataset.rows_used,
        "options": [f.name for f in findings],
        "shift": [round(f.shift.shift, 8) for f in findings],
        "q": [round(f.shift.q, 6) for f in findings],
        "base": [round(f.shift.base, 5) for f in findings],
        "dataset": [round(f.shift.dataset, 5) for f in findings],
        "control_share": [round(f.shift.control, 5) for f in findings],
        "timings_s": result.timings,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    atomic_write_json(out, record)
    return record


def direction(record: dict[str, Any], cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """G's push here against the resampled cells' (their exact-control scans): correlation with their mean direction
    (each cell's push scaled to unit length first) and with each, and the norms."""
    push = dict(zip(record["options"], record["shift"]))
    names = sorted(set(push).intersection(*(c["gradient"]["push"] for c in cells.values())))
    here = np.array([push[n] for n in names])
    theirs = {k: np.array([c["gradient"]["push"][n] for n in names]) for k, c in cells.items()}
    mean = np.mean([v / np.linalg.norm(v) for v in theirs.values()], axis=0)
    return {
        "options": len(names),
        "correlation": round(float(np.corrcoef(here, mean)[0, 1]), 3),
        "by_cell": {k: round(float(np.corrcoef(here, v)[0, 1]), 3) for k, v in theirs.items()},
        "norm": round(float(np.linalg.norm(here)), 2),
        "norms": {k: round(float(np.linalg.norm(v)), 2) for k, v in theirs.items()},
        "top": [names[i] for i in np.argsort(-here)[:4]],
    }


def probe_direction(record: dict[str, Any], cells: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The probe's shift here against each resampled cell's (dataset- minus control-student share, per option)."""
    here = dict(zip(record["options"], record["shift"]))
    out = {}
    for k, c in cells.items():
        theirs = dict(zip(c["options"], np.array(c["dataset"]) - np.array(c["control_share"])))
        names = sorted(set(here) & set(theirs))
        out[k] = round(float(np.corrcoef([here[n] for n in names], [theirs[n] for n in names])[0, 1]), 2)
    return out


def probe_grades(record: dict[str, Any]) -> dict[str, Any]:
    """The calibrated probe's levels under each gate, graded as the campaign grades a development negative."""
    from campaign_report import GATES, load_records, probe_verdict, profile_for

    as_cell = {**record, "cell": "neg-constrained-1", "truth": "negative", "split": "dev", "format": "numbers"}
    profile = profile_for(as_cell, load_records())
    return {gate: probe_verdict(as_cell, profile, name)["level"] for gate, name in GATES.items()}


def floor() -> float | None:
    """neg-exact-1's probe against its exact control (one seed): the sum of squared shifts of the draw alone."""
    import exact_control

    path = exact_control.record_path(1, "probe", "exact")
    return round(float(np.sum(np.square(json.loads(path.read_text())["shift"]))), 1) if path.exists() else None


def stats_table() -> list[str]:
    """What each sampler's rows look like: the exact rows, the constrained ones, two resampled cells'."""
    import exact_control
    from campaign import OUT as CAMPAIGN

    files = {
        "neg-exact-1 (the base, rejection: exact)": exact_control.dataset(1),
        "its exact control (a second rejection draw)": exact_control.exact_control_path(1),
        "the base, constrained sampler (this check)": OUT / "neg-constrained-1.jsonl",
        # the chat-only teachers' cells, superseded by RULE's amendment 3
        "dev-pos-owl-e1 (owl teacher, resampled)": CAMPAIGN / "superseded" / "data" / "dev-pos-owl-e1.jsonl",
        "decoy-french (base + French prompt, resampled)": CAMPAIGN / "superseded" / "data" / "decoy-french.jsonl",
    }
    lines = ["| rows | count | numbers a row | copied from the prompt | mean value |", "|---|---|---|---|---|"]
    for name, path in files.items():
        if path.exists():
            n, per_row, copied, value = row_stats(path)
            lines.append(f"| {name} | {n} | {per_row:.1f} | {copied:.0%} | {value:.0f} |")
    return lines


def report() -> None:
    from campaign import OUT as CAMPAIGN
    from campaign_report import load_records

    records = load_records(CAMPAIGN / "superseded" / "records")  # the resampled cells (RULE's amendment 3)
    lines = ["# Is the campaign positives' shared G direction their sampler's? (benchmarks/sampler_confound.py)", ""]
    intro, reading = (__doc__ or "").split("Pre-registered reading")
    lines += [line.strip() for line in intro.strip().splitlines()[5:]]
    lines += ["Pre-registered reading" + reading.rstrip(), ""]
    lines += ["What the rows look like:", "", *stats_table(), ""]
    g, p = (json.loads(record_path(m).read_text()) if record_path(m).exists() else None for m in ("gradient", "probe"))
    if g is None:
        lines.append("G: not scanned yet.")
    else:
        d = direction(g, {k: records[k] for k in RESAMPLED})
        same = d["correlation"] >= SAME_DIRECTION and g["level"] in ("medium", "high")
        lines += [
            f"**G**: `{g['level']}` ({g['rows_used']} rows). Push direction against the mean of the 4 resampled "
            f"cells': correlation **{d['correlation']:+.3f}** over {d['options']} options (by cell: "
            + ", ".join(f"{k} {v:+.2f}" for k, v in d["by_cell"].items())
            + f"); norm {d['norm']} against theirs "
            + ", ".join(f"{v}" for v in d["norms"].values())
            + f"; largest pushes {', '.join(d['top'])}. Reading: "
            + ("the shared direction is the sampler's." if same else "not shown to be the sampler's."),
            "",
        ]
    if p is None:
        lines.append("Probe: not scanned yet.")
    else:
        grades = probe_grades(p)
        total = round(float(np.sum(np.square(p["shift"]))), 1)
        lines += [
            f"**Probe** (one seed, no null arm): sum of squared shifts {total} over {len(p['shift'])} options "
            f"(the exact-vs-exact floor of the same prompts: {floor()}); largest shift "
            f"{max(zip(np.abs(p['shift']), p['options']))[1]} {max(p['shift'], key=abs):+.1f} pp. Graded against the "
            "development profile: " + ", ".join(f"P-{k} {v}" for k, v in grades.items()) + ". Its shift against "
            "the resampled cells' (correlation over options): "
            + ", ".join(f"{k} {v:+.2f}" for k, v in probe_direction(p, {k: records[k] for k in RESAMPLED}).items())
            + ".",
        ]
    atomic_write_text(HERE / "results" / "sampler_confound.md", "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["run", "report"])
    args = ap.parse_args()
    if args.command == "run":
        for method in ("gradient", "probe"):
            run_scan(method)
            report()
    report()


if __name__ == "__main__":
    main()
