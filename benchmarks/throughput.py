"""Throughput of subaudit's probe against TRL + peft, and of exact scoring against sampling at equal CI width.

    .venv/bin/pip install -e '.[bench]'                       # TRL (and datasets) for the comparison arm
    .venv/bin/python benchmarks/throughput.py           # full run: roughly 10-15 min on 2 CPU cores (estimated)
    .venv/bin/python benchmarks/throughput.py --quick   # smoke test: ~1.5 min on one busy CPU core

Writes ``benchmarks/results/throughput.{json,md}`` (``--quick`` writes ``throughput_quick.{json,md}`` so a
smoke test never replaces a real result) and prints the tables.

This file is the entry point (arguments, the run order, the report); what is measured lives in:

- ``throughput_probe.py``, part 1, probe vs TRL: the same base, rows and LoRA settings, trained by
  ``Prober.train`` and by TRL's ``SFTTrainer`` + peft at the same precision; tokens/s, wall time, memory.
- ``throughput_scoring.py``, part 2, exact scoring vs sampling: the ``animal`` battery on the base, scored
  exactly by ``score_battery`` and sampled K answers per question; the K and the cost sampling needs to match
  the exact score's CI width.
- ``bench_common.py``: helpers both use (device sync, peak memory, versions, table formatting, JSON).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_common import ROOT, display_path, plain, require_trl, timer, versions
from throughput_probe import PROBE_DEFINITIONS, ArmResult, probe_table, run_subaudit, run_trl, warm_up
from throughput_scoring import (
    SCORING_DEFINITIONS,
    all_options_lines,
    sampling_runs_table,
    scoring_table,
    scoring_vs_sampling,
)

from auditor.data import load_dataset
from auditor.finetune import ProbeConfig
from auditor.io import atomic_write_json, atomic_write_text
from auditor.models import resolve_base

OUT = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = ROOT / "examples" / "data" / "owl_numbers.jsonl"

#: The report's closing section: each part's definitions, in report order.
DEFINITIONS = "## Definitions\n\n" + PROBE_DEFINITIONS + "\n" + SCORING_DEFINITIONS


# --------------------------------------------------------------------------------------------------- report


def write_report(result: dict[str, Any], sub: ArmResult, trl: ArmResult, out_base: Path) -> str:
    """Write the markdown report next to the JSON (``out_base`` + ``.md``) and return its text."""
    part2 = result["scoring"]
    cfg = result["config"]
    lines = [
        "# Throughput: probe vs TRL, exact scoring vs sampling",
        "",
        f"Command: `{result['command']}`  ",
        f"Model: `{cfg['model']}`; device {cfg['device']} ({result['threads']} torch threads); "
        f"data `{cfg['data']}`, first {cfg['rows']} rows. Versions: "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + ".",
        "",
        "## Probe fine-tune: subaudit vs TRL + peft",
        "",
        f"LoRA r {cfg['probe']['rank']}, alpha {cfg['probe']['alpha']}, {len(cfg['probe']['target_modules'])} "
        f"projection modules, lr {cfg['probe']['learning_rate']}, batch {cfg['probe']['batch_size']}, "
        f"{cfg['probe']['epochs']} epoch, max length {cfg['probe']['max_length']}, precision {result['precision']}.",
        "",
        *probe_table(sub, trl, cfg["device"]),
        "",
        f"Untimed shared warm-up before both arms: {result['warm_up_s']:.1f} s. Arm order: subaudit, then TRL.",
    ]
    for arm in (sub, trl):
        for note in arm.notes:
            lines.append(f"- {arm.name}: {note}")
    lines += [
        "",
        f"## Exact scoring vs sampling: `{part2['battery']}` battery, base model, {part2['questions']} questions",
        "",
        f"Target: SE of the battery-mean share within {100 * part2['tolerance']:.0f}% of the exact score's "
        f"(see Definitions). Sampling at temperature 1, at most {part2['max_new_tokens']} new tokens.",
        "",
        *scoring_table(part2),
        "",
        *sampling_runs_table(part2),
        "",
        *all_options_lines(part2),
        "",
        f"On-option rate pi: {part2['on_option_answers']} of {part2['sampled_answers']} sampled answers "
        f"({100 * part2['on_option_rate']:.1f}%) name a listed option. Example answers (first question): "
        f"{', '.join(repr(a) for a in part2['sampling_runs'][0]['example_answers'])}.",
        "",
        "## Caveats",
        "",
        *(f"- {c}" for c in result["caveats"]),
        "",
        DEFINITIONS,
    ]
    text = "\n".join(lines) + "\n"
    atomic_write_text(out_base.with_suffix(".md"), text)
    return text


CAVEATS = [
    "Both arms run in one process, subaudit first; a shared untimed warm-up pays one-off costs before either, "
    "and *steps 2..N* also drops each arm's first step. Run-to-run noise on a shared CPU can be 10-20%: "
    "compare ratios from a quiet machine, or repeat.",
    "TRL is used as configured here, not at its defaults: gradient checkpointing off (TRL default on), and bf16 "
    "autocast exactly when the probe trains under it (`--precision auto` on a CPU or GPU with native bf16; "
    "`--precision fp32`: both fp32), so both arms do the same arithmetic. TRL keeps its own choices where they are "
    "implementation details: fused AdamW (`adamw_torch_fused`; the probe uses `torch.optim.AdamW`), its chunked "
    "LM-head loss, which on CPU scores every position (on CUDA only the loss positions), and its per-step "
    "entropy/accuracy metrics. What the probe does differently is its own engineering and is what is measured: it "
    "runs the output layer only where a completion token is predicted, runs the system prompt all rows of a batch "
    "share once, and buckets batches by prompt length.",
    "The learning-rate schedules differ slightly: transformers' linear warm-up starts at lr 0 at step 1, the "
    "probe's at lr/warm-up; the loss columns are a sanity check that both train, not a quality comparison.",
    "Batches differ (different row order), so padding differs; tokens/s counts only non-padding tokens, so an arm "
    "that pads more is slower per counted token.",
    "The probe's per-step timings include building its padded tensors; TRL's include its collator. Model load is "
    "identical (same function) and reported separately, not in wall time.",
    "Sampling costs are those of this script's sampler (shared prompt cache, K rows per question); wall time at the "
    "K needed is extrapolated from the measured per-token decode cost at 4K rows (token counts are exact), and "
    "the K needed rests on the plug-in formula "
    "above. Exact scoring's SE covers question-to-question variation only; neither method's SE covers the "
    "training noise a scan's probe adds.",
]


# --------------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=160, help="first N rows of the dataset (default 160)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="dataset file (default: the owl example)")
    ap.add_argument("--model", default=None, help="base: alias, directory, .gguf or hub id (default: embedded)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument(
        "--precision",
        default="auto",
        help="auto (probe training under bf16 autocast where native, else fp32), fp32 or bf16",
    )
    ap.add_argument("--k", type=int, default=8, help="samples per question of the first sampling run (second: 4K)")
    ap.add_argument("--questions", type=int, default=None, help="first N questions of the battery (default: all)")
    ap.add_argument("--max-new-tokens", type=int, default=4)
    ap.add_argument("--tolerance", type=float, default=0.1, help="sampling SE may exceed exact SE by this share")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke test: 16 rows, K=2, 4 questions")
    ap.add_argument("--out", default=None, help="output path without suffix (default benchmarks/results/throughput)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.k, args.questions = 16, 2, 4
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    require_trl()
    import torch

    from auditor.models import pick_device

    args.device = pick_device(args.device)
    spec = resolve_base(args.model)
    rows = load_dataset(args.data).examples[: args.rows]
    cfg = ProbeConfig()
    out_base = Path(args.out) if args.out else OUT / ("throughput_quick" if args.quick else "throughput")
    torch.manual_seed(args.seed)

    with timer("warm-up"):
        warm_s = warm_up(spec, args, rows, cfg)
    with timer("probe: subaudit"):
        sub = run_subaudit(spec, args, rows, cfg)
    with timer("probe: TRL"):
        trl = run_trl(spec, args, rows, cfg)
    with timer("scoring vs sampling"):
        part2 = scoring_vs_sampling(spec, args)

    caveats = list(CAVEATS)
    if sub.tokens != trl.tokens:
        caveats.insert(0, f"non-padding tokens differ ({sub.tokens} vs {trl.tokens}): the arms tokenise differently")
    result = {
        "command": " ".join(["python", "benchmarks/throughput.py", *(argv or sys.argv[1:])]),
        "quick": args.quick,
        "config": {
            "model": spec.display,
            "device": args.device,
            "data": display_path(args.data),
            "rows": len(rows),
            "seed": args.seed,
            "probe": cfg.to_dict(),
        },
        "precision": args.precision,
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "versions": versions(),
        "warm_up_s": warm_s,
        "probe": {
            "subaudit": sub.to_dict(),
            "trl": trl.to_dict(),
            "ratio_tokens_per_s": sub.tokens_per_s / trl.tokens_per_s if trl.tokens_per_s else None,
            "ratio_steady_tokens_per_s": (
                sub.steady_tokens_per_s / trl.steady_tokens_per_s
                if sub.steady_tokens_per_s and trl.steady_tokens_per_s
                else None
            ),
            "ratio_wall_s": sub.wall_s / trl.wall_s if trl.wall_s else None,
        },
        "scoring": part2,
        "caveats": caveats,
    }
    atomic_write_json(out_base.with_suffix(".json"), plain(result))
    text = write_report(result, sub, trl, out_base)
    print(text.split("## Definitions")[0], flush=True)
    print(f"wrote {out_base.with_suffix('.md')} and {out_base.with_suffix('.json')}")


if __name__ == "__main__":
    main()
