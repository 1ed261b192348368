"""How fast an exact (rejection) control draw runs under each round schedule and batch width.

    .venv/bin/python benchmarks/draw_speed.py [--rows 24] [--variants 256:16,512:128,256:16,512:128]

A variant ``BATCH:CAP`` sets the rows a batch of rejection tries holds on the CPU
(``auditor.conditional.REJECT_BATCH_CPU``) and the most tries a row gets in one round
(``REJECT_COPIES_MAX``): ``16`` keeps every round at 16 tries (the schedule before ``DRAW_SCHEDULE`` 2), ``128`` doubles
them from 16. Each variant draws the gradient method's control (any-count rejection, 400 tries a row) for the first
``--rows`` prompts of benchmarks/results/exact_control/data/neg-exact-1.jsonl on the embedded base, with the same seed.
List the variants more than once to interleave them, so that background load falls on each alike. Results:
benchmarks/results/draw_speed.md (written by hand from this script's lines).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "results" / "exact_control" / "data" / "neg-exact-1.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--variants", default="256:16,512:128,256:16,512:128")
    args = ap.parse_args()

    from auditor import conditional
    from auditor.conditional import ControlSampling, draw_rows
    from auditor.control import control_prompts, row_checks
    from auditor.data import load_dataset
    from auditor.models import LoadOptions, resolve_base

    loaded = LoadOptions().load(resolve_base(None))
    data = load_dataset(str(DATA))
    sample = dataclasses.replace(data, examples=data.examples[: args.rows])
    checks, _ = row_checks(sample, count="any")
    prompts = control_prompts(sample.examples)
    for variant in args.variants.split(","):
        batch, cap = (int(x) for x in variant.split(":"))
        conditional.REJECT_BATCH_CPU, conditional.REJECT_COPIES_MAX = batch, cap
        start = time.perf_counter()
        draw = draw_rows(loaded, prompts, checks, seed=7, sampling=ControlSampling("rejection", tries=400, count="any"))
        print(
            f"batch {batch} cap {cap}: {time.perf_counter() - start:.1f} s, {draw.attempts} tries, {draw.steps} steps, "
            f"{draw.kept} of {len(prompts)} rows kept",
            flush=True,
        )


if __name__ == "__main__":
    main()
