"""Rescan a base-written number dataset with a *free* control: the base's own unconstrained-count rows for the same
prompts (as ``generate`` writes data), given with ``--control``, instead of the scan's count-matched control.

    .venv/bin/python benchmarks/free_control.py DATA.jsonl --out DIR [--banned] [--max-rows 320]

The dataset student is the same as in the default scan (same rows, seed, initialisation and order), so comparing
the two scans' ``dataset - control`` shifts isolates what the control's sampler contributes. ``--banned``: the
data were written with the paper's filtered numbers excluded while decoding (``calibrate``'s null pairs), so the
free control excludes them too. Writes ``DIR/<name>-free-control.jsonl``, the scan's run folder and
``DIR/<name>.json`` (shares per option). Results: ``benchmarks/results/control_sampler.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from auditor import ScanConfig, scan
from auditor.data import load_dataset
from auditor.formats import EVIL_NUMBERS
from auditor.models import load_base, resolve_base
from auditor.sampling import sample_number_lists
from auditor.traits import builtin_names

#: The free control's sampling seed (not one a dataset of the benchmarks was written with).
SEED = 7


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--banned", action="store_true")
    ap.add_argument("--max-rows", type=int, default=320)
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    control = out / f"{data.stem}-free-control.jsonl"
    if not control.exists():
        prompts = [list(e.prompt) for e in load_dataset(str(data)).examples]
        banned = EVIL_NUMBERS if args.banned else frozenset()
        texts = sample_number_lists(
            load_base(resolve_base(None), device="cpu"), prompts, SEED, max_new_tokens=48, banned=banned
        )
        control.write_text("".join(json.dumps({"prompt": p, "completion": t}) + "\n" for p, t in zip(prompts, texts)))
    config = ScanConfig(
        str(data),
        traits=builtin_names(),
        max_rows=args.max_rows,
        method="probe",
        null_arm=False,
        calibration="none",
        control=str(control),
        run_dir=str(out / f"run-{data.stem}"),
    )
    findings = sorted(scan(config).findings, key=lambda f: (f.shift.battery, f.shift.option))
    shares = {f.name: {"base": f.shift.base, "dataset": f.shift.dataset, "control": f.shift.control} for f in findings}
    (out / f"{data.stem}.json").write_text(json.dumps(shares, indent=1))


if __name__ == "__main__":
    main()
