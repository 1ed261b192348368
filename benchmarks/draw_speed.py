"""How fast an exact (rejection) control draw runs under each round schedule and batch width.

    .venv/bin/python benchmarks/draw_speed.py [--rows 24] [--variants 256:16,512:128,256:16,512:128]
    git show REV:auditor/sampling.py > /tmp/old_sampling.py
    .venv/bin/python benchmarks/draw_speed.py --old /tmp/old_sampling.py --variants 512:128,512:128:old

A variant ``BATCH:CAP`` sets the rows a batch of rejection tries holds on the CPU
(``auditor.conditional.REJECT_BATCH_CPU``) and the most tries a row gets in one round
(``REJECT_COPIES_MAX``): ``16`` keeps every round at 16 tries (the schedule before ``DRAW_SCHEDULE`` 2), ``128`` doubles
them from 16. Each variant draws the gradient method's control (any-count rejection, 400 tries a row) for the first
``--rows`` prompts of benchmarks/results/exact_control/data/neg-exact-1.jsonl on the embedded base, with the same seed.
A variant ending in ``:old`` decodes with the ``sampling`` module at ``--old`` (another revision's
``auditor/sampling.py``), so that two versions of the decoder run side by side; the last line says whether their
texts are the same. List the variants more than once to interleave them, so that background load falls on each
alike. Results:
benchmarks/results/draw_speed.md (written by hand from this script's lines).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "results" / "exact_control" / "data" / "neg-exact-1.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--variants", default="256:16,512:128,256:16,512:128")
    ap.add_argument("--old", type=Path, help="another revision's auditor/sampling.py, for the variants ending in :old")
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
    decoders = {"": conditional.draw_number_lists}
    if args.old:
        decoders[":old"] = old_module(args.old).draw_number_lists
    texts = {}
    for variant in args.variants.split(","):
        batch, cap, *old = variant.split(":")
        version = ":old" if old else ""
        conditional.REJECT_BATCH_CPU, conditional.REJECT_COPIES_MAX = int(batch), int(cap)
        conditional.draw_number_lists = decoders[version]
        start = time.perf_counter()
        draw = draw_rows(loaded, prompts, checks, seed=7, sampling=ControlSampling("rejection", tries=400, count="any"))
        print(
            f"batch {batch} cap {cap}{version}: {time.perf_counter() - start:.1f} s, {draw.attempts} tries, "
            f"{draw.steps} steps, {draw.kept} of {len(prompts)} rows kept",
            flush=True,
        )
        texts.setdefault(version, {}).setdefault(variant, draw.texts)
    if len(texts) == 2:
        same = [texts[""].get(v.removesuffix(":old")) == t for v, t in texts[":old"].items()]
        print(f"texts the same as the current decoder's at the same schedule: {all(same)}")


def old_module(path: Path):
    """``path`` loaded as a module beside ``auditor.sampling`` (its relative imports resolve in ``auditor``)."""
    spec = importlib.util.spec_from_file_location("auditor.old_sampling", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
