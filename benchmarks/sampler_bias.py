"""How far is each control sampler from the base's own distribution given the checks, and what does it cost?

    .venv/bin/python benchmarks/sampler_bias.py [--data examples/data/owl_numbers.jsonl] [--rows 96] [--pool 32]

For the dataset's first ``--rows`` prompts, each with its row's count of numbers (the README example's rows by
default), it draws a pool of ``--pool`` independent format-constrained samples per prompt with their importance
weights. Every sampler is summarised by the expectation of a few
row statistics under its draws: the mean per-token log-probability under the base, the share of numbers copied
from the prompt, and the mean value.

- ``constrained``: one constrained sample (the scan's control before 0.3);
- ``resample M``: importance resampling of M candidates; its expectation is computed exactly from the pool, as the
  average over disjoint groups of M of the groups' self-normalised estimates;
- ``reference``: the self-normalised estimate over the whole pool (the best estimate of p(y | x, checks) here).

Also times the constrained sampler and measures rejection with early abort (``--tries`` a prompt): its keep rate
and decoding steps a try, with the row's count of numbers and with any count (as ``generate`` draws data).
Writes ``benchmarks/results/sampler_bias.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

from auditor.data import load_dataset
from auditor.formats import number_count
from auditor.models import load_base, resolve_base
from auditor.sampling import Decoding, NumberFormat, draw_number_lists

RESULTS = Path(__file__).resolve().parent / "results"
STATS = ("logp_per_token", "copied", "mean_value")


def row_stats(draw, prompt_text: str) -> dict[str, float]:
    numbers = re.findall(r"\d+", draw.text)
    shown = set(re.findall(r"\d+", prompt_text))
    return {
        "logp_per_token": draw.log_prob / max(1, draw.tokens),
        "copied": sum(n in shown for n in numbers) / max(1, len(numbers)),
        "mean_value": sum(int(n) for n in numbers) / max(1, len(numbers)),
    }


def weighted(group: list, stats: list[dict[str, float]]) -> dict[str, float] | None:
    """The self-normalised estimate of each statistic over a group of draws (``None`` when no draw is valid)."""
    logw = [d.log_mass if d.ended else -math.inf for d in group]
    top = max(logw)
    if top == -math.inf:
        return None
    w = [math.exp(x - top) for x in logw]
    return {k: sum(wi * s[k] for wi, s in zip(w, stats)) / sum(w) for k in STATS}


def mean_over(estimates: list[dict[str, float] | None]) -> dict[str, float]:
    ok = [e for e in estimates if e is not None]
    return {k: round(sum(e[k] for e in ok) / len(ok), 4) for k in STATS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="examples/data/owl_numbers.jsonl")
    ap.add_argument("--rows", type=int, default=96)
    ap.add_argument("--pool", type=int, default=32)
    ap.add_argument("--tries", type=int, default=16, help="rejection tries a prompt")
    args = ap.parse_args()
    rows = load_dataset(args.data).examples[: args.rows]
    prompts = [list(e.prompt) for e in rows]
    texts = [e.user_text for e in rows]
    counts = [number_count(e.completion) for e in rows]
    chars = "".join(sorted(set("0123456789").union(*(set(e.completion) for e in rows))))
    loaded = load_base(resolve_base(None), device="cpu")
    fmt = NumberFormat(loaded.tokenizer, chars)
    out: dict = {"data": args.data, "rows": len(rows), "pool": args.pool, "samplers": {}, "seconds_per_row": {}}

    start = time.perf_counter()
    pool_prompts = [p for p in prompts for _ in range(args.pool)]
    pool_counts = [c for c in counts for _ in range(args.pool)]
    pool = draw_number_lists(loaded, pool_prompts, 1, fmt, Decoding(), 64, counts=pool_counts, measure_mass=True)
    out["seconds_per_row"]["constrained (with weights)"] = round((time.perf_counter() - start) / len(pool), 3)
    groups = [pool[i * args.pool : (i + 1) * args.pool] for i in range(len(rows))]
    stats = [[row_stats(d, t) for d in g] for g, t in zip(groups, texts)]
    out["samplers"]["constrained"] = mean_over([s[0] for s in stats])
    m = 1
    while m <= args.pool:
        est = []
        for g, s in zip(groups, stats):
            parts = [weighted(g[k : k + m], s[k : k + m]) for k in range(0, args.pool - m + 1, m)]
            est.append(mean_over(parts) if any(p is not None for p in parts) else None)
        out["samplers"][f"resample {m}"] = mean_over(est)
        m *= 2
    out["samplers"]["reference"] = out["samplers"].pop(f"resample {m // 2}")
    print(json.dumps(out["samplers"], indent=1), flush=True)

    for label, wanted in (("count-matched", counts), ("any count", None)):
        start = time.perf_counter()
        tries = [p for p in prompts for _ in range(args.tries)]
        wanted_counts = None if wanted is None else [c for c in wanted for _ in range(args.tries)]
        draws = draw_number_lists(loaded, tries, 3, fmt, Decoding(), 64, 256, counts=wanted_counts, reject=True)
        accepted = sum(d.ended for d in draws)
        out[f"rejection ({label})"] = {
            "tries": len(draws),
            "accepted": accepted,
            "keep_rate": round(accepted / len(draws), 4),
            "steps_per_try": round(sum(d.tokens for d in draws) / len(draws), 2),
            "seconds_per_try": round((time.perf_counter() - start) / len(draws), 4),
        }
        print(label, out[f"rejection ({label})"], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sampler_bias.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
