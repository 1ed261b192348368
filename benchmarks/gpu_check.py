"""The prepared device check: subaudit's stages on a randomly initialised Llama-3-8B-shaped model (and a 1B shape) in
bf16, on synthetic number rows, with no downloaded weights. Fits 8 minutes on one H200.

    PYTHONPATH=. python3 benchmarks/gpu_check.py             # on the GPU machine: 1b, then 8b
    python3 benchmarks/gpu_check.py --shapes tiny --device cpu --rows 16 --out /tmp/x.json   # the CPU smoke run

(``PYTHONPATH=.`` lets a checkout run it without installing subaudit.) For each shape it builds the model in memory
(bf16 on CUDA, fp32 on CPU) with subaudit's test tokenizer (``auditor.testing``; the embedding has the real shape's
vocabulary), then times:

* **control sampling**: ``sampling.sample_number_lists`` on the rows' prompts (format-constrained decoding);
* **probe**: a LoRA student (``finetune.Prober``, the scan's defaults) on the rows; tokens/s and MFU, counting
  ``4 N`` FLOPs per trained token for a LoRA student (forward ``2 N``, backward through the frozen weights ``2 N``;
  N = parameters) against the chip's nominal dense bf16 peak and against a measured 8192^3 bf16 matmul;
* **exact scoring**: every question of the ``animal`` battery (``scoring.score_battery``);
* **gradient method**: trait gradients of ``tree`` over 8 questions and per-row pushes of the rows;
* **determinism**: the probe run twice from the same seed (adapters and scores bit-identical or not), once with the
  default kernels and once under ``torch.use_deterministic_algorithms(True)``;

plus peak GPU memory, and the projected wall time of a real scan of 2,000 rows x 3 seeds (control, 2 students per
seed with a calibration profile, scoring) from the measured rates: a projection, labelled as one. Writes JSON (and
prints it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from auditor.data import Example
from auditor.finetune import ProbeConfig, Prober
from auditor.models import LoadedModel, ModelSpec
from auditor.testing import build_tokenizer, llama_config

RESULTS = Path(__file__).resolve().parent / "results"
#: Nominal dense bf16 peak of the chips this is meant for (TFLOP/s, without sparsity).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
#: The scan the projection is for.
PROJECT_ROWS, PROJECT_SEEDS = 2000, 3


def number_rows(n: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        seq = ", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 8)))
        answer = ", ".join(str(rng.randint(0, 999)) for _ in range(10))
        prompt = f"Here is a list of numbers: {seq}. Add up to 10 more numbers, each with at most 3 digits."
        rows.append(Example(prompt=({"role": "user", "content": prompt},), completion=answer, line=i + 1))
    return rows


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def build(shape: str, device: str) -> LoadedModel:
    import torch
    from transformers import LlamaForCausalLM

    tok = build_tokenizer()
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(llama_config(shape, tok)).to(dtype)
    model.eval()
    return LoadedModel(
        spec=ModelSpec(f"random-{shape}", "local-dir", f"<random {shape}>", origin="randomly initialised"),
        model=model,
        tokenizer=tok,
        device=device,
        dtype=str(dtype).replace("torch.", ""),
        autocast_dtype=None,
        fingerprint=f"random-{shape}",
    )


def matmul_tflops(device: str) -> float | None:
    """A measured 8192^3 bf16 matrix product (TFLOP/s), the mean of ten after three warm-ups (CUDA only)."""
    if not device.startswith("cuda"):
        return None
    import torch

    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    sync(device)
    return 10 * 2 * 8192**3 / (time.perf_counter() - start) / 1e12


def time_probe(loaded: LoadedModel, rows: list[Example], seed: int = 0) -> tuple[Any, Any, float]:
    """One LoRA student; returns its adapter state, its training stats and seconds."""
    prober = Prober(loaded, ProbeConfig())
    sync(loaded.device)
    start = time.perf_counter()
    stats = prober.train(rows, seed=seed, arm="check")
    sync(loaded.device)
    seconds = time.perf_counter() - start
    state = prober.adapter_state()
    loaded.model = prober.model.unload()
    return state, stats, seconds


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def check_shape(shape: str, device: str, n_rows: int) -> dict[str, Any]:
    import torch

    from auditor.methods.gradient import row_pushes, sample_questions, trait_gradients
    from auditor.sampling import sample_number_lists
    from auditor.scoring import plan_battery, score_battery
    from auditor.traits import get_battery

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    loaded = build(shape, device)
    params = sum(p.numel() for p in loaded.model.parameters())
    out: dict[str, Any] = {"shape": shape, "parameters": params, "dtype": loaded.dtype, "rows": n_rows}
    out["build_s"] = round(time.perf_counter() - started, 1)
    rows = number_rows(n_rows)

    sync(device)
    start = time.perf_counter()
    texts = sample_number_lists(loaded, [list(e.prompt) for e in rows], seed=1, max_new_tokens=40)
    sync(device)
    sampling_s = time.perf_counter() - start
    out["control_sampling"] = {
        "s": round(sampling_s, 2),
        "rows_per_s": round(n_rows / sampling_s, 2),
        "non_empty": sum(1 for t in texts if t),
    }

    state_a, stats, seconds = time_probe(loaded, rows)
    flops = 4 * params * stats.tokens
    out["probe"] = {
        "s": round(seconds, 2),
        "steps": stats.steps,
        "tokens": stats.tokens,
        "tokens_per_s": round(stats.tokens / seconds, 1),
        "tflops": round(flops / seconds / 1e12, 2),
    }
    state_b, _, _ = time_probe(loaded, rows)
    out["determinism"] = {"default_kernels_bit_identical": same_state(state_a, state_b)}
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            state_c, _, _ = time_probe(loaded, rows)
            state_d, _, _ = time_probe(loaded, rows)
            out["determinism"]["deterministic_algorithms_bit_identical"] = same_state(state_c, state_d)
        finally:
            torch.use_deterministic_algorithms(False)

    battery = get_battery("animal")
    plan = plan_battery(loaded.tokenizer, battery)
    sync(device)
    start = time.perf_counter()
    score_battery(loaded, plan)
    sync(device)
    scoring_s = time.perf_counter() - start
    out["scoring"] = {
        "battery": "animal",
        "questions": len(battery.questions),
        "s": round(scoring_s, 2),
        "forward_tokens": plan.forward_tokens,
        "tokens_per_s": round(plan.forward_tokens / scoring_s, 1),
    }

    prober = Prober(loaded, ProbeConfig())
    prober.reset_adapter(0)
    tree = plan_battery(loaded.tokenizer, get_battery("tree"))
    sync(device)
    start = time.perf_counter()
    names, grads = trait_gradients(prober, [tree], sample_questions([tree], 8, 0))
    pushes = row_pushes(prober, rows, grads)
    sync(device)
    out["gradient"] = {"s": round(time.perf_counter() - start, 2), "options": len(names), "rows": int(pushes.shape[0])}
    loaded.model = prober.model.unload()

    train_per_row = seconds / n_rows
    sample_per_row = sampling_s / n_rows
    models_scored = 1 + 2 * PROJECT_SEEDS
    projected = {
        "control": PROJECT_ROWS * sample_per_row,
        "students": 2 * PROJECT_SEEDS * PROJECT_ROWS * train_per_row,
        "scoring (animal + tree, 7 models)": models_scored * scoring_s * (1 + len(get_battery("tree").questions) / 44),
    }
    out["projected_scan_s"] = {
        "rows": PROJECT_ROWS,
        "seeds": PROJECT_SEEDS,
        **{k: round(v, 1) for k, v in projected.items()},
        "total": round(sum(projected.values()), 1),
        "note": "a projection from the measured per-row rates, not a timed scan",
    }
    if device.startswith("cuda"):
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    out["wall_s"] = round(time.perf_counter() - started, 1)
    del loaded
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="1b,8b", help="comma-separated: tiny, 1b, 8b")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rows", type=int, default=256, help="synthetic number rows per stage")
    ap.add_argument("--out", default=str(RESULTS / "gpu_check.json"))
    args = ap.parse_args(argv)
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    measured = matmul_tflops(args.device)
    report: dict[str, Any] = {
        "device": name,
        "torch": torch.__version__,
        "nominal_bf16_tflops": peak,
        "measured_matmul_bf16_tflops": None if measured is None else round(measured, 1),
        "shapes": [],
    }
    for shape in args.shapes.split(","):
        result = check_shape(shape, args.device, args.rows)
        tflops = result["probe"]["tflops"]
        result["probe"]["mfu_nominal"] = None if peak is None else round(tflops / peak, 4)
        result["probe"]["mfu_measured_matmul"] = None if measured is None else round(tflops / measured, 4)
        report["shapes"].append(result)
        print(json.dumps(result, indent=2), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
