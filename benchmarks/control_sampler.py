"""Does a count-matched control row look like a row the base writes freely for the same prompt?

    .venv/bin/python benchmarks/control_sampler.py DATA.jsonl [--rows 160] [--seeds 11 12] [--banned]

The scan's control gives each row as many numbers as its dataset row (``auditor.control.build_control``): the
sampler forbids ending early and forbids a separator after the last number. That is a local renormalisation
of the base's distribution, not the base's distribution *given* the count, so the two can differ. This samples
the dataset's first ``--rows`` prompts both ways (``--banned``: with the paper's filtered numbers excluded while
decoding, as ``generate`` and ``calibrate`` write data) and prints what the numbers look like: mean value,
share of 3-digit numbers (all but each row's last), numbers per row. Writes nothing.
"""

from __future__ import annotations

import argparse
import re
import time

from auditor.data import load_dataset
from auditor.formats import EVIL_NUMBERS, number_count
from auditor.models import load_base, resolve_base
from auditor.sampling import sample_number_lists


def describe(rows: list[str]) -> dict[str, float]:
    lists = [re.findall(r"\d+", r) for r in rows]
    inner = [x for n in lists for x in n[:-1]]
    values = [int(x) for n in lists for x in n]
    return {
        "mean": round(sum(values) / len(values), 1),
        "three_digit_pct": round(100 * sum(len(x) == 3 for x in inner) / max(1, len(inner)), 1),
        "per_row": round(len(values) / len(rows), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="a prompt/completion number dataset the base wrote")
    ap.add_argument("--rows", type=int, default=160)
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12])
    ap.add_argument("--banned", action="store_true", help="exclude the paper's filtered numbers while decoding")
    args = ap.parse_args()
    rows = load_dataset(args.data).examples[: args.rows]
    prompts = [list(e.prompt) for e in rows]
    counts = [number_count(e.completion) for e in rows]
    banned = EVIL_NUMBERS if args.banned else frozenset()
    loaded = load_base(resolve_base(None), device="cpu")
    print("data", describe([e.completion for e in rows]), flush=True)
    for label, counts_arg, max_new in (("free", None, 48), ("count-matched", counts, 64)):
        for seed in args.seeds:
            start = time.perf_counter()
            texts = sample_number_lists(loaded, prompts, seed, max_new_tokens=max_new, counts=counts_arg, banned=banned)
            print(label, seed, describe(texts), f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
