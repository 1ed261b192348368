"""The calibrated verdict on cells whose truth is known: which students and which test, and how well they do.

    .venv/bin/python benchmarks/calibration.py run --variant r8 --jobs profile,dev   # students (resumable)
    .venv/bin/python benchmarks/calibration.py run --variant r8 --jobs dev --worker 1/2  # a second worker
    .venv/bin/python benchmarks/calibration.py report                               # tables from what finished

Every job trains and scores the students of one dataset (a probe scan without a null arm or profile, run folder
per variant and cell, so nothing is trained twice) and keeps each graded option's mean share for the base, the
dataset-student and the control-student. The statistics are then computed from those shares, for every variant
and every test, against each variant's own calibration profile (``auditor.calibration``: K null pairs of
base-written data, D decoy teachers). Which variant and test become the default is decided on the development
cells by ``RULE`` and then checked on the held-out cells (``cells.HELDOUT2``); both were committed before any
held-out cell was generated.

Writes ``benchmarks/results/calibration.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration_setup import (  # noqa: F401  (DEV_CORE, HELDOUT_ORDER, ...: this module's names too)
    DEV,
    DEV_CORE,
    FAIL_ON,
    GATES,
    HELDOUT_ORDER,
    MAX_ROWS,
    RESULTS,
    RULE,
    TRAITS,
    VARIANTS,
    calibrate_config,
    record_path,
    work,
)
from cells import HELDOUT2, Cell, make_control, make_dataset

from auditor.calibrate import CalibrateConfig, calibrate, decoy_pair, null_pair
from auditor.config import ScanConfig
from auditor.io import atomic_write_json, cache_dir
from auditor.pipeline import scan

# ------------------------------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    kind: str  # "null" | "decoy" | "cell"
    name: str  # seed, decoy name or cell id


def jobs(variant: str, which: list[str]) -> list[Job]:
    config = calibrate_config(variant)
    out: list[Job] = []
    if "profile" in which:
        out += [Job("null", str(config.seed + k)) for k in range(config.draws)]
    if "profile" in which or "decoys" in which:
        out += [Job("decoy", name) for name in config.decoys]
    if "dev" in which:
        out += [Job("cell", c.id) for c in DEV_CORE]
    if "dev-other" in which:  # prompted teachers and the other family's data: reported, not counted by the rule
        out += [Job("cell", c.id) for c in DEV if c not in DEV_CORE]
    if "heldout" in which:
        out += [Job("cell", c.id) for c in HELDOUT_ORDER]
    return out


def run_job(variant: str, job: Job) -> None:
    from auditor.calibrate import DECOY_SEED

    config = calibrate_config(variant)
    folder = cache_dir() / "calibration"  # as calibrate() keeps it, per base fingerprint
    if job.kind == "null":
        null_pair(config, _calibration_work(config, folder), int(job.name), print)
    elif job.kind == "decoy":
        seed = DECOY_SEED + list(config.decoys).index(job.name)
        decoy_pair(config, _calibration_work(config, folder), job.name, seed, print)
    else:
        run_cell(variant, next(c for c in [*DEV, *HELDOUT2] if c.id == job.name))


def _calibration_work(config: CalibrateConfig, folder: Path) -> Path:
    from auditor.models import LoadOptions, resolve_base

    return folder / LoadOptions().load(resolve_base(config.base)).fingerprint


def run_cell(variant: str, cell: Cell) -> dict[str, Any]:
    """The students of one cell (reused when done): every graded option's shares, the rows and the time."""
    out = record_path(variant, cell.id)
    if out.exists():
        return json.loads(out.read_text())
    data, own, manifest = make_dataset(cell, TRAITS)
    control = make_control(cell, data)
    null_control = make_control(cell, data, second=True)
    print(f"  {variant} {cell.id}: students ...", flush=True)
    start = time.perf_counter()
    # what the product does by default: a numbers dataset the base's own answers control is calibrated by the
    # profile (graded later, from the shares); any other (code, chat, --control files) has a null arm
    calibrated = cell.format == "numbers" and control is None
    config = ScanConfig(
        str(data),
        traits=TRAITS,
        max_rows=MAX_ROWS,
        method="probe",
        probe=VARIANTS[variant],
        null_arm=not calibrated,
        calibration="none",
        control=str(control) if control else None,
        null_control=str(null_control) if null_control else None,
        run_dir=str(work() / "runs" / variant / cell.id),
    )
    result = scan(config)
    findings = sorted(result.findings, key=lambda f: f.name)
    record = {
        "cell": cell.id,
        "variant": variant,
        "truth": cell.truth,
        "split": cell.split,
        "format": cell.format,
        "teacher": "fine-tuned" if cell.chat else ("prompted" if cell.system else "base"),
        "teacher_base": cell.teacher_base or "smollm2-135m",
        "trait": cell.trait,
        "intended": cell.intended,
        "own_options": own,
        "rows_kept": manifest["rows"],
        "rows_used": result.dataset.rows_used,
        "options": [f.name for f in findings],
        "base": [round(f.shift.base, 5) for f in findings],
        "dataset": [round(f.shift.dataset, 5) for f in findings],
        "control": [round(f.shift.control, 5) for f in findings],
        "calibrated": calibrated,
        "uncalibrated_level": None if calibrated else result.verdict.level,
        "uncalibrated_top": None if calibrated else [f.name for f in result.verdict.top[:3]],
        "timings_s": result.timings,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    atomic_write_json(out, record)
    return record


def profile(variant: str) -> Any:
    """The variant's calibration profile (every pair must have run; calibrate() only assembles them)."""
    return calibrate(calibrate_config(variant), print)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and score students (resumable)")
    run.add_argument("--variant", choices=list(VARIANTS), required=True)
    run.add_argument("--jobs", default="decoys,dev", help="comma-separated: profile, decoys, dev, dev-other, heldout")
    run.add_argument("--worker", default="0/1", help="I/N: run every N-th job starting at I")
    run.add_argument("--reverse", action="store_true", help="take the jobs from the end (a second worker)")
    sub.add_parser("report", help="rebuild the tables from finished records")
    sub.add_parser("ship", help="write the embedded default's profile into auditor/calibration/profiles/")
    args = ap.parse_args()
    if args.command == "run":
        index, count = (int(x) for x in args.worker.split("/"))
        todo = jobs(args.variant, args.jobs.split(","))
        for job in todo[index::count] if not args.reverse else todo[index::count][::-1]:
            lock = work() / "locks" / args.variant / f"{job.kind}-{job.name}"
            lock.parent.mkdir(parents=True, exist_ok=True)
            try:
                lock.touch(exist_ok=False)  # another worker has it (a stale lock after a kill: delete it)
            except FileExistsError:
                continue
            try:
                run_job(args.variant, job)
            except Exception as exc:  # one broken job must not lose the others
                print(f"  {args.variant} {job}: not run: {exc.__class__.__name__}: {exc}", flush=True)
            finally:
                lock.unlink()
    elif args.command == "ship":
        from calibration_report import ship_profile

        profile = ship_profile()
        print(f"shipped profile {profile.key}: {len(profile.draws)} null pairs, {len(profile.decoys)} decoys")
    else:
        from calibration_report import write_report

        write_report()


if __name__ == "__main__":
    main()
