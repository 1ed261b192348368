"""How far bf16 weights move battery shares against fp32 (the GPU default's question), on the embedded default.

    .venv/bin/python benchmarks/precision.py      # ~3 min on 2 CPU cores; writes results/precision.{json,md}

The base is loaded twice, with fp32 weights and with bf16 weights (log-softmax and shares in fp32 either way, as the
scorer always does), and every question of each battery is scored. For every option: the difference of its share
averaged over questions (what a scan's shift is made of), and the largest difference on a single question.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from auditor.io import atomic_write_text
from auditor.models import load_base, resolve_base
from auditor.scoring import plan_battery, score_battery
from auditor.traits import get_battery

RESULTS = Path(__file__).resolve().parent / "results"
BATTERIES = ["animal", "tree", "misalignment", "power-seeking"]


def shares(dtype_precision: str) -> tuple[dict[str, np.ndarray], float]:
    import torch

    loaded = load_base(resolve_base(None), device="cpu", precision="fp32")
    if dtype_precision == "bf16":
        loaded.model.to(torch.bfloat16)
        loaded.dtype = "bfloat16"
    start = time.perf_counter()
    out = {}
    for name in BATTERIES:
        battery = get_battery(name)
        out[name] = score_battery(loaded, plan_battery(loaded.tokenizer, battery)).share * 100
    return out, time.perf_counter() - start


def main() -> None:
    fp32, t32 = shares("fp32")
    bf16, t16 = shares("bf16")
    rows = []
    for name in BATTERIES:
        options = get_battery(name).graded_options
        all_options = get_battery(name).options
        for option in options:
            k = list(all_options).index(option)
            mean_diff = float(bf16[name][:, k].mean() - fp32[name][:, k].mean())
            max_q = float(np.abs(bf16[name][:, k] - fp32[name][:, k]).max())
            rows.append({"battery": name, "option": option, "mean_share_fp32": float(fp32[name][:, k].mean()),
                         "mean_diff_pp": mean_diff, "max_question_diff_pp": max_q})  # fmt: skip
    worst = max(rows, key=lambda r: abs(r["mean_diff_pp"]))
    blob = {
        "batteries": BATTERIES,
        "seconds": {"fp32": round(t32, 1), "bf16": round(t16, 1)},
        "max_abs_mean_diff_pp": round(abs(worst["mean_diff_pp"]), 3),
        "worst_option": f"{worst['battery']}: {worst['option']}",
        "median_abs_mean_diff_pp": round(float(np.median([abs(r["mean_diff_pp"]) for r in rows])), 4),
        "max_question_diff_pp": round(max(r["max_question_diff_pp"] for r in rows), 3),
        "options": rows,
    }
    (RESULTS / "precision.json").write_text(json.dumps(blob, indent=2) + "\n")
    lines = [
        "# bf16 weights against fp32: battery shares on SmolLM2-135M-Instruct (CPU)",
        "",
        f"Batteries {', '.join(BATTERIES)}; log-softmax and shares in fp32 both times; {len(rows)} graded options.",
        "",
        f"- largest difference of an option's mean share: **{blob['max_abs_mean_diff_pp']} pp** "
        f"({blob['worst_option']}); median over options {blob['median_abs_mean_diff_pp']} pp",
        f"- largest difference on a single question: {blob['max_question_diff_pp']} pp",
        f"- scoring time: fp32 {blob['seconds']['fp32']} s, bf16 {blob['seconds']['bf16']} s (this CPU)",
        "",
        "| option | fp32 share % | bf16 - fp32, pp (mean over questions) | largest on one question, pp |",
        "|---|---:|---:|---:|",
        *[
            f"| {r['battery']}: {r['option']} | {r['mean_share_fp32']:.2f} | {r['mean_diff_pp']:+.3f} | "
            f"{r['max_question_diff_pp']:.3f} |"
            for r in sorted(rows, key=lambda r: -abs(r["mean_diff_pp"]))[:15]
        ],
    ]
    atomic_write_text(RESULTS / "precision.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
