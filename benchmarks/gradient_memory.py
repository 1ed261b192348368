"""How much memory the gradient method's trait gradients take: the whole battery's graph against one question's.

    .venv/bin/python benchmarks/gradient_memory.py [--limit-gb 14]     # -> results/gradient_memory.md

Two campaign processes were killed by the kernel for memory during ``trait_gradients`` (13.2 and 18.7 GB resident,
2026-12-06). The method took each battery's share (a mean over 8 questions, every option's continuation scored) as
one autograd graph and held it for one backward pass per option. Since then it takes one question's graph at a time
and averages the questions' gradients (the same gradient, to float rounding: ``tests/test_gradient.py``). Each
variant runs in a process of its own on the embedded default base with the campaign's batteries and the method's
defaults; a watchdog stops a variant whose resident memory passes ``--limit-gb`` (so that the machine's other jobs
survive) and the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "gradient_memory"


def tensors() -> Path:
    """Where the variants' gradients are kept for the comparison (the cache: about 250 MB each)."""
    from auditor.io import cache_dir

    return cache_dir() / "bench" / "gradient_memory"


TRAITS = ["animal", "tree", "misalignment", "power-seeking", "sycophancy"]  # the campaign's


def resident_gb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1e6


def whole_battery(prober: Any, plans: list[Any], questions: dict[str, list[int]]) -> dict[str, Any]:
    """The method before the change: one graph per battery, one backward pass per option with the graph retained."""
    import torch

    from auditor.methods.gradient import b_modules, graded_shares

    modules = b_modules(prober)
    weights = [m.weight for _, m in modules]
    per_module: list[list[Any]] = [[] for _ in modules]
    for plan in plans:
        with torch.enable_grad():
            shares, options = graded_shares(prober.loaded, plan, questions[plan.battery.name])
            for k in range(len(options)):
                grads = torch.autograd.grad(shares[k], weights, retain_graph=k < len(options) - 1)
                for m, g in enumerate(grads):
                    per_module[m].append(g.detach().float())
    return {name: torch.stack(gs) for (name, _), gs in zip(modules, per_module)}


def run_variant(variant: str, limit_gb: float) -> None:
    """In this process: the trait gradients by ``variant``, peak resident memory and seconds into OUT."""
    import torch

    from auditor.finetune import Prober
    from auditor.methods.gradient import GradientSettings, sample_questions, trait_gradients
    from auditor.models import load_base, resolve_base
    from auditor.scoring import plan_battery
    from auditor.traits import resolve_batteries

    peak = [0.0]
    stopped = threading.Event()

    def watch() -> None:
        while True:
            peak[0] = max(peak[0], resident_gb())
            if peak[0] > limit_gb:
                record = {"variant": variant, "peak_gb": round(peak[0], 2), "stopped": True, "limit_gb": limit_gb}
                (OUT / f"{variant}.json").write_text(json.dumps(record))
                stopped.set()
                os._exit(9)
            time.sleep(0.2)

    OUT.mkdir(parents=True, exist_ok=True)
    loaded = load_base(resolve_base(None))
    settings = GradientSettings()
    prober = Prober(loaded, settings.probe)
    prober.reset_adapter(0)
    plans = [plan_battery(loaded.tokenizer, b) for b in resolve_batteries(TRAITS)]
    questions = sample_questions(plans, settings.questions, 0)
    before = resident_gb()
    threading.Thread(target=watch, daemon=True).start()
    start = time.perf_counter()
    grads = (
        whole_battery(prober, plans, questions) if variant == "whole" else trait_gradients(prober, plans, questions)[1]
    )
    seconds = time.perf_counter() - start
    tensors().mkdir(parents=True, exist_ok=True)
    torch.save(grads, tensors() / f"{variant}.pt")
    record = {"variant": variant, "peak_gb": round(peak[0], 2), "before_gb": round(before, 2),
              "seconds": round(seconds, 1), "stopped": False, "limit_gb": limit_gb,
              "questions": {k: len(v) for k, v in questions.items()}}  # fmt: skip
    (OUT / f"{variant}.json").write_text(json.dumps(record))


def report() -> None:
    import torch

    rows = {
        v: json.loads((OUT / f"{v}.json").read_text())
        for v in ("whole", "per-question")
        if (OUT / f"{v}.json").exists()
    }
    lines = ["# Trait gradients' memory (benchmarks/gradient_memory.py)", ""]
    lines += [line.strip() for line in (__doc__ or "").strip().splitlines()[4:]]
    lines += ["", "| variant | peak resident memory | seconds |", "|---|---|---|"]
    for v, r in rows.items():
        peak = f"> {r['limit_gb']:g} GB (stopped by the watchdog)" if r["stopped"] else f"{r['peak_gb']:.2f} GB"
        lines.append(f"| {v} | {peak} | {r.get('seconds', '-')} |")
    if all((tensors() / f"{v}.pt").exists() for v in ("whole", "per-question")):
        a, b = (torch.load(tensors() / f"{v}.pt") for v in ("whole", "per-question"))
        diff = max(float((a[k] - b[k]).abs().max() / a[k].abs().max().clamp(min=1e-30)) for k in a)
        lines += [
            "",
            f"Largest difference between the two gradients, relative to each module's largest entry: {diff:.2e}.",
        ]
    lines += ["", "Measured with the campaign's workers running beside it (2 CPU cores, 23 GiB)."]
    (HERE / "results" / "gradient_memory.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit-gb", type=float, default=14.0)
    ap.add_argument("--variant", choices=["whole", "per-question"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        run_variant(args.variant, args.limit_gb)
        return
    for variant in ("per-question", "whole"):
        subprocess.run([sys.executable, __file__, "--variant", variant, "--limit-gb", str(args.limit_gb)], check=False)
    report()
    print((HERE / "results" / "gradient_memory.md").read_text())


if __name__ == "__main__":
    main()
