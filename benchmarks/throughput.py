"""Throughput of subaudit's probe against TRL + peft, and of exact scoring against sampling at equal CI width.

    .venv/bin/pip install -e '.[bench]'                       # TRL (and datasets) for the comparison arm
    .venv/bin/python benchmarks/throughput.py           # full run: roughly 10-15 min on 2 CPU cores (estimated)
    .venv/bin/python benchmarks/throughput.py --quick   # smoke test: ~1.5 min on one busy CPU core

Writes ``benchmarks/results/throughput.{json,md}`` (``--quick`` writes ``throughput_quick.{json,md}`` so a
smoke test never replaces a real result) and prints the tables.

Part 1, probe vs TRL: the same base (loaded with ``auditor.models.load_base``, freshly for each arm), the same
first ``--rows`` rows of the dataset and the same LoRA settings (``ProbeConfig()``'s defaults: r 8, alpha 16,
the 7 projection modules, lr 1e-3, batch 8, 1 epoch, max length 512, no dropout, linear warm-up/decay), trained
(a) by ``Prober.train`` and (b) by TRL's ``SFTTrainer`` with a peft ``LoraConfig`` on a conversational
prompt-completion dataset with ``completion_only_loss=True`` (no eval, no checkpoints, ``report_to="none"``,
no gradient checkpointing, dataloader without workers), at the same precision: bf16 autocast for both
where the device has native bf16 (``--precision auto``), fp32 for both with ``--precision fp32``. Both arms
run in this process, one after the other, after an untimed warm-up pass that both share.

Part 2, exact scoring vs sampling: the ``animal`` battery on the base (no adapter). Exact scoring is
``score_battery``; sampling draws K answers per question at temperature 1 (prompt run once per question and its
cache copied to K rows, so sampling gets the same prefix sharing as exact scoring) and counts answers naming an
option. The K that sampling needs for (nearly) the exact score's question-level CI, and the cost of sampling at
that K, are derived in the markdown this script writes (section "Definitions").
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.metadata
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from auditor.chat import encode_training_example, end_of_turn_ids
from auditor.data import Example, load_dataset
from auditor.io import atomic_write_json, atomic_write_text
from auditor.models import LoadedModel, ModelSpec, load_base, resolve_base
from auditor.probe import ProbeConfig, Prober, pad_batch, plan_steps
from auditor.scoring import (
    ScoringPlan,
    _prefix_pass,
    _run,
    _shared_prefix,
    plan_battery,
    prompt_tokens,
    score_battery,
)
from auditor.traits import get_battery

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = ROOT / "examples" / "data" / "owl_numbers.jsonl"
MIB = 1024 * 1024


# --------------------------------------------------------------------------------------------------- utilities


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _free(device: str) -> None:
    """Drop garbage and hand freed heap back to the OS, so the next arm's RSS starts near the true baseline."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only; elsewhere freed heap may stay in RSS
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak resident set size (polled by a thread via psutil) and CUDA peak allocation during a block.

    Without psutil the peak is ``getrusage``'s ``ru_maxrss``, which is the peak of the whole process so far
    (``rss_source`` says which one was used).
    """

    def __init__(self, device: str, interval_s: float = 0.02):
        self.device = device
        self.interval_s = interval_s
        self.result: dict[str, Any] = {}
        self._stop = threading.Event()
        self._peak = 0
        self._thread: threading.Thread | None = None
        try:
            import psutil

            self._proc: Any = psutil.Process()
        except ImportError:
            self._proc = None

    def _rss(self) -> int:
        if self._proc is not None:
            return int(self._proc.memory_info().rss)
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, self._rss())

    def __enter__(self) -> PeakMemory:
        _free(self.device)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._start = self._peak = self._rss()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak = max(self._peak, self._rss())
        self.result = {
            "rss_source": "psutil (polled every 20 ms)" if self._proc is not None else "getrusage ru_maxrss",
            "rss_start_mib": round(self._start / MIB, 1),
            "rss_peak_mib": round(self._peak / MIB, 1),
            "rss_peak_over_start_mib": round((self._peak - self._start) / MIB, 1),
        }
        if self.device.startswith("cuda"):
            import torch

            self.result["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / MIB, 1)


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "transformers", "peft", "trl", "datasets", "accelerate"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def require_trl() -> None:
    """Fail with a clear message when the comparison arm's packages are missing."""
    missing = []
    for pkg in ("trl", "datasets"):
        try:
            __import__(pkg)
        except ImportError:
            missing.append(pkg)
    if missing:
        raise SystemExit(
            f"benchmarks/throughput.py needs {' and '.join(missing)} for the TRL comparison arm; install the bench "
            "extra:  .venv/bin/pip install -e '.[bench]'  (or: .venv/bin/pip install trl; check that torch is not "
            "replaced)"
        )


# --------------------------------------------------------------------------------------------------- part 1


@dataclass
class ArmResult:
    """One fine-tune: what it processed, how long it took, how much memory it used."""

    name: str
    steps: int
    rows: int
    tokens: int  # non-padding tokens through forward + backward
    padding_tokens: int  # padding positions in the padded batches
    loss_tokens: int  # positions that carried loss
    load_s: float
    setup_s: float  # peft wrapping (+ tokenisation for TRL's dataset preparation)
    train_s: float  # the training call (subaudit: encode + loop; TRL: dataloader, accelerate, loop)
    step_end_s: list[float]  # end of each optimiser step, seconds since the training call began
    step_tokens: list[int]  # non-padding tokens of each step
    losses: list[float]
    memory: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        """Setup + training (the model load, the same for both arms, is not included)."""
        return self.setup_s + self.train_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.train_s if self.train_s else 0.0

    @property
    def steady_tokens_per_s(self) -> float | None:
        """Tokens/s of steps 2..N (the first step, with one-off costs, is discarded)."""
        if len(self.step_end_s) < 2:
            return None
        seconds = self.step_end_s[-1] - self.step_end_s[0]
        return sum(self.step_tokens[1:]) / seconds if seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(
            wall_s=round(self.wall_s, 3),
            tokens_per_s=round(self.tokens_per_s, 1),
            steady_tokens_per_s=None if self.steady_tokens_per_s is None else round(self.steady_tokens_per_s, 1),
            padding_share=round(self.padding_tokens / max(1, self.tokens + self.padding_tokens), 4),
        )
        for k in ("load_s", "setup_s", "train_s"):
            d[k] = round(d[k], 3)
        d["step_end_s"] = [round(x, 4) for x in self.step_end_s]
        d["losses"] = [round(x, 5) for x in self.losses]
        return d


def warm_up(spec: ModelSpec, args: argparse.Namespace, rows: Sequence[Example], cfg: ProbeConfig) -> float:
    """One untimed forward + backward on a batch (frozen base, gradients through all layers), shared by both arms.

    A full batch (2 rows with ``--quick``).

    It pays the process's one-off costs (lazy imports, kernel selection, allocator growth) before either arm is
    timed, so the arm that runs first is not penalised for them.
    """

    start = time.perf_counter()
    loaded = load_base(spec, device=args.device, precision=args.precision)
    loaded.model.requires_grad_(False)
    loaded.model.enable_input_require_grads()
    n = 2 if args.quick else cfg.batch_size
    batch = [encode_training_example(loaded.tokenizer, e.prompt, e.completion) for e in rows[:n]]
    ids_t, att_t, lab_t = pad_batch(batch, loaded.tokenizer.pad_token_id or 0)
    dev = loaded.device
    with loaded.train_autocast():
        out = loaded.model(input_ids=ids_t.to(dev), attention_mask=att_t.to(dev), labels=lab_t.to(dev))
    out.loss.backward()
    _sync(dev)
    del loaded, out
    _free(args.device)
    return time.perf_counter() - start


def run_subaudit(spec: ModelSpec, args: argparse.Namespace, rows: Sequence[Example], cfg: ProbeConfig) -> ArmResult:
    """Arm (a): ``Prober.train`` as a scan runs it."""
    with PeakMemory(args.device) as mem:
        t0 = time.perf_counter()
        loaded = load_base(spec, device=args.device, precision=args.precision)
        t1 = time.perf_counter()
        prober = Prober(loaded, cfg)
        t2 = time.perf_counter()
        # the batches Prober.train will run (same functions, same seed), for the padding and per-step counts
        encoded = prober.encode(rows)
        order = prober.batches(encoded, args.seed)
        step_tokens = [sum(len(encoded[i][0]) for i in idx) for idx in order]
        padding = sum(len(idx) * max(len(encoded[i][0]) for i in idx) for idx in order) - sum(step_tokens)
        ends: list[float] = []

        dev = loaded.device

        def on_step(step: int, loss: float) -> None:
            _sync(dev)
            ends.append(time.perf_counter())

        t3 = time.perf_counter()
        stats = prober.train(rows, seed=args.seed, arm="bench", on_step=on_step)
        _sync(loaded.device)
        t4 = time.perf_counter()
    notes = []
    if stats.micro_batch and stats.micro_batch < cfg.batch_size:
        notes.append(f"ran out of memory; micro-batches of {stats.micro_batch} rows (padding count is approximate)")
    result = ArmResult(
        name="subaudit Prober.train",
        steps=stats.steps,
        rows=stats.rows,
        tokens=stats.tokens,
        padding_tokens=padding,
        loss_tokens=stats.completion_tokens,
        load_s=t1 - t0,
        setup_s=t2 - t1,
        train_s=t4 - t3,
        step_end_s=[e - t3 for e in ends],
        step_tokens=step_tokens,
        losses=stats.losses,
        memory=mem.result,
        notes=notes,
    )
    del prober, loaded
    _free(args.device)
    return result


class _CountingCollator:
    """Wraps TRL's collator and records every batch's real tokens, padded positions and loss positions."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.tokens: list[int] = []
        self.padding: list[int] = []
        self.loss_tokens: list[int] = []

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(examples)
        real = int(batch["attention_mask"].sum())
        self.tokens.append(real)
        self.padding.append(int(batch["input_ids"].numel()) - real)
        self.loss_tokens.append(int((batch["labels"][:, 1:] != -100).sum()))
        return batch


def run_trl(spec: ModelSpec, args: argparse.Namespace, rows: Sequence[Example], cfg: ProbeConfig) -> ArmResult:
    """Arm (b): TRL ``SFTTrainer`` + peft ``LoraConfig``, completion-only loss, same hyper-parameters."""
    import datasets
    from peft import LoraConfig
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()
    steps = plan_steps(len(rows), cfg)
    warmup = max(1, int(round(cfg.warmup_ratio * steps)))  # what Prober.train uses
    out_dir = tempfile.mkdtemp(prefix="subaudit-bench-trl-")
    ends: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, targs: Any, state: Any, control: Any, **kwargs: Any) -> None:
            _sync(args.device)
            ends.append(time.perf_counter())

    try:
        with PeakMemory(args.device) as mem:
            t0 = time.perf_counter()
            loaded = load_base(spec, device=args.device, precision=args.precision)
            t1 = time.perf_counter()
            data = datasets.Dataset.from_list(
                [
                    {
                        "prompt": [dict(m) for m in e.prompt],
                        "completion": [{"role": "assistant", "content": e.completion}],
                    }
                    for e in rows
                ]
            )
            bf16 = loaded.dtype == "bfloat16" or loaded.train_autocast_dtype == "bfloat16"  # the probe's precision
            sft = SFTConfig(
                output_dir=out_dir,
                per_device_train_batch_size=cfg.batch_size,
                gradient_accumulation_steps=1,
                num_train_epochs=cfg.epochs,
                learning_rate=cfg.learning_rate,
                lr_scheduler_type="linear",
                warmup_steps=warmup,
                weight_decay=cfg.weight_decay,
                max_grad_norm=cfg.max_grad_norm,
                max_length=cfg.max_length,
                completion_only_loss=True,
                packing=False,
                padding_free=False,
                gradient_checkpointing=False,  # TRL's default is True; the probe does not checkpoint
                bf16=bf16,  # bf16 autocast exactly when the probe trains under it
                fp16=False,
                use_cpu=not loaded.device.startswith("cuda"),
                dataloader_num_workers=0,
                save_strategy="no",
                eval_strategy="no",
                report_to="none",
                logging_strategy="steps",
                logging_steps=1,  # per-step loss for the comparison (one .item() per step)
                disable_tqdm=True,
                seed=args.seed,
            )
            lora = LoraConfig(
                r=cfg.rank,
                lora_alpha=cfg.alpha,
                lora_dropout=0.0,
                target_modules=list(cfg.target_modules),
                bias="none",
                task_type="CAUSAL_LM",
            )
            trainer = SFTTrainer(
                model=loaded.model,
                args=sft,
                train_dataset=data,
                processing_class=loaded.tokenizer,
                peft_config=lora,
                callbacks=[StepClock()],
            )
            for cb in (PrinterCallback, ProgressCallback):
                trainer.remove_callback(cb)
            counter = _CountingCollator(trainer.data_collator)
            trainer.data_collator = counter
            t2 = time.perf_counter()
            trainer.train()
            _sync(loaded.device)
            t3 = time.perf_counter()
        losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
        result = ArmResult(
            name=f"TRL {importlib.metadata.version('trl')} SFTTrainer + peft",
            steps=int(trainer.state.global_step),
            rows=len(trainer.train_dataset),
            tokens=sum(counter.tokens),
            padding_tokens=sum(counter.padding),
            loss_tokens=sum(counter.loss_tokens),
            load_s=t1 - t0,
            setup_s=t2 - t1,
            train_s=t3 - t2,
            step_end_s=[e - t2 for e in ends],
            step_tokens=list(counter.tokens),
            losses=losses,
            memory=mem.result,
            notes=[
                f"optimizer {getattr(sft.optim, 'value', sft.optim)}, warm-up {warmup} steps, "
                "sampler: transformers RandomSampler"
            ],
        )
        del trainer, loaded
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    _free(args.device)
    return result


# --------------------------------------------------------------------------------------------------- part 2


@dataclass
class SampleRun:
    """K sampled answers per question, with the cost of drawing them."""

    k: int
    answers: list[list[str]]  # [question][sample] decoded answer text
    picks: list[list[int]]  # [question][sample] option index named first in the answer, -1 for none
    prefill_tokens: int
    decode_tokens: int  # K rows per decode pass (finished rows keep running until all K are done)
    decode_passes: int
    prefill_s: float
    decode_s: float

    @property
    def forward_tokens(self) -> int:
        return self.prefill_tokens + self.decode_tokens


def option_matcher(options: Sequence[str]) -> re.Pattern[str]:
    alts = "|".join(re.escape(o.lower()) for o in sorted(options, key=len, reverse=True))
    return re.compile(rf"\b({alts})(?:e?s)?\b")


def first_option(text: str, pattern: re.Pattern[str], options: Sequence[str]) -> int:
    m = pattern.search(text.lower())
    return [o.lower() for o in options].index(m.group(1)) if m else -1


def sample_battery(loaded: LoadedModel, plan: ScoringPlan, k: int, max_new: int, seed: int) -> SampleRun:
    """Draw ``k`` answers per question at temperature 1, at most ``max_new`` tokens each.

    The prompt runs once per question (continuing the shared system-prompt cache, like exact scoring); its cache
    is repeated to ``k`` rows, which decode together until every row has ended its turn or hit ``max_new``.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    tok, model, dev = loaded.tokenizer, loaded.model, loaded.device
    stop = torch.tensor(end_of_turn_ids(tok))
    pattern = option_matcher(plan.battery.options)
    pad = tok.pad_token_id or 0
    loaded.model.eval()
    answers, picks = [], []
    prefill_s = decode_s = 0.0
    decode_tokens = passes = 0
    t = time.perf_counter()
    shared = _shared_prefix(loaded, plan.prefixes)
    _sync(dev)
    prefill_s += time.perf_counter() - t
    for prefix in plan.prefixes:
        with torch.no_grad(), loaded.autocast():
            t = time.perf_counter()
            out = _prefix_pass(loaded, prefix, shared)
            probs = torch.softmax(out.logits[0, -1].float(), dim=-1).cpu()
            cur = torch.multinomial(probs, k, replacement=True, generator=gen)
            prefill_s += time.perf_counter() - t
            t = time.perf_counter()
            rows = [cur]
            done = torch.isin(cur, stop)
            cache = out.cache
            cache.batch_repeat_interleave(k)
            for _ in range(max_new - 1):
                if bool(done.all()):
                    break
                o = _run(model, cur.view(k, 1).to(dev), cache)
                decode_tokens += k
                passes += 1
                cache = o.cache
                probs = torch.softmax(o.logits[:, -1].float(), dim=-1).cpu()
                nxt = torch.multinomial(probs, 1, generator=gen).view(k)
                cur = torch.where(done, torch.full_like(nxt, pad), nxt)
                rows.append(cur)
                done = done | torch.isin(cur, stop)
            _sync(dev)
            decode_s += time.perf_counter() - t
        seqs = torch.stack(rows, dim=1).tolist()
        texts = []
        for seq in seqs:
            end = next((i for i, x in enumerate(seq) if x in stop.tolist()), len(seq))
            texts.append(tok.decode(seq[:end], skip_special_tokens=True).strip())
        answers.append(texts)
        picks.append([first_option(x, pattern, plan.battery.options) for x in texts])
    return SampleRun(k, answers, picks, prompt_tokens(plan.prefixes), decode_tokens, passes, prefill_s, decode_s)


def k_needed(within: float, between: float, tolerance: float) -> float:
    """Samples per question for SE_sampling = (1 + tolerance) * SE_exact.

    SE_exact^2 = between / Q;  SE_sampling(K)^2 = (between + within / K) / Q, so
    K = within / (((1 + tolerance)^2 - 1) * between).
    """
    if between <= 0:
        return math.inf
    return within / (((1 + tolerance) ** 2 - 1) * between)


def question_variances(p: np.ndarray) -> tuple[float, float]:
    """Between-question variance of exact shares ``p`` and the mean binomial within-question variance."""
    between = float(np.var(p, ddof=1)) if len(p) > 1 else 0.0
    return between, float(np.mean(p * (1 - p)))


def all_options(
    share: np.ndarray,
    options: list[str],
    on_rate: float,
    tolerance: float,
    sampling_cost: Callable[[float], tuple[float, float]],
    plan: ScoringPlan,
) -> dict[str, Any]:
    """Samples needed and the forward-token ratio for every option of the battery, and for a whole scan.

    A scan reports every option at once, so sampling matches its CI width only when the K needed for the
    hardest option is reached: the scan's K is the maximum over options."""
    per_option = []
    for j, option in enumerate(options):
        p = share[:, j]
        between, within = question_variances(p)
        k_on = k_needed(within, between, tolerance)
        k_total = k_on / on_rate if on_rate > 0 else math.inf
        tokens = sampling_cost(k_total)[0] if math.isfinite(k_total) else math.inf
        per_option.append(
            {
                "option": option,
                "exact_share": float(p.mean()),
                "k_total_needed": k_total,
                "token_ratio": tokens / plan.forward_tokens,
            }
        )
    ratios = np.array([r["token_ratio"] for r in per_option])
    hardest = max(per_option, key=lambda r: r["k_total_needed"])
    return {
        "per_option": sorted(per_option, key=lambda r: -r["exact_share"]),
        "min_ratio": float(ratios.min()),
        "min_ratio_option": per_option[int(np.argmin(ratios))]["option"],
        "median_ratio": float(np.median(ratios)),
        "options_at_least_50x": int((ratios >= 50).sum()),
        "scan_k_total_needed": hardest["k_total_needed"],
        "scan_hardest_option": hardest["option"],
        "scan_token_ratio": hardest["token_ratio"],
    }


def scoring_vs_sampling(spec: ModelSpec, args: argparse.Namespace) -> dict[str, Any]:
    """Part 2 (see the module docstring)."""
    battery = get_battery("animal")
    if args.questions:
        battery = dataclasses.replace(battery, questions=battery.questions[: args.questions])
    loaded = load_base(spec, device=args.device, precision=args.precision)
    plan = plan_battery(loaded.tokenizer, battery)
    assert isinstance(plan, ScoringPlan)
    n_q = len(plan.prefixes)

    score_battery(loaded, dataclasses.replace(plan, prefixes=plan.prefixes[:1]))  # untimed warm-up
    t = time.perf_counter()
    scores = score_battery(loaded, plan)
    _sync(loaded.device)
    exact_s = time.perf_counter() - t
    share = scores.share  # [question, option]

    k1, k2 = args.k, 4 * args.k
    runs = [sample_battery(loaded, plan, k, args.max_new_tokens, args.seed + i) for i, k in enumerate((k1, k2))]
    del loaded
    _free(args.device)

    # decode cost per row-token at the larger measured K (cheaper per token than the smaller K on most hardware)
    big = runs[1] if runs[1].decode_tokens else runs[0]
    s_per_decode_token = big.decode_s / big.decode_tokens if big.decode_tokens else 0.0
    prefill_s = float(np.mean([r.prefill_s for r in runs]))
    full_passes = n_q * (args.max_new_tokens - 1)  # at large K some row always runs to the cap

    def sampling_cost(k: float) -> tuple[float, float]:
        k = math.ceil(k)
        return prompt_tokens(plan.prefixes) + full_passes * k, prefill_s + full_passes * k * s_per_decode_token

    k_pool = k1 + k2
    picks = np.array([a + b for a, b in zip(runs[0].picks, runs[1].picks)])  # [question, k_pool]
    n_samples = int(picks.size)
    n_on = int((picks >= 0).sum())
    on_rate = n_on / n_samples
    mean_share = share.mean(axis=0)
    top = int(np.argmax(mean_share))
    targets = [top] + [i for i, o in enumerate(battery.options) if o == "owl" and i != top]
    rows = []
    for j in targets:
        p = share[:, j]
        between, within = question_variances(p)
        se_exact = math.sqrt(between / n_q)
        k_on = k_needed(within, between, args.tolerance)  # on-option answers per question
        # all answers per question: only a share `on_rate` of them name a listed option; with none seen, the
        # rule of three bounds the rate (95%) and the K is a lower bound
        k_total = k_on / on_rate if on_rate > 0 else k_on * n_samples / 3
        hat = (picks == j).mean(axis=1)  # per question: share of all answers (the paper's metric)
        # share among on-option answers, over the questions that had any
        on_q = [(q == j).sum() / (q >= 0).sum() for q in picks if (q >= 0).any()]
        var_hat = float(np.var(hat, ddof=1)) if n_q > 1 else 0.0
        within_hat = float(np.mean(hat * (1 - hat))) * k_pool / (k_pool - 1)
        between_hat = var_hat - within_hat / k_pool
        row: dict[str, Any] = {
            "option": battery.options[j],
            "role": "base's top option" if j == top else "owl",
            "exact_share": float(p.mean()),
            "exact_se": se_exact,
            "exact_between_var": between,
            "exact_within_binomial_var": within,
            "k_on_option_needed": k_on,
            "k_total_needed": k_total,
            "k_total_is_lower_bound": on_rate == 0,
            "sampled_k": k_pool,
            "sampled_share_all_answers": float(hat.mean()),
            "sampled_share_on_option_answers": float(np.mean(on_q)) if on_q else None,
            "sampled_se_all_answers": math.sqrt(var_hat / n_q),
            "paper_metric_between_var_mom": between_hat,
            "paper_metric_within_var": within_hat,
            "paper_metric_k_needed": k_needed(within_hat, between_hat, args.tolerance),
        }
        if math.isfinite(k_total):
            tokens, seconds = sampling_cost(k_total)
            row.update(
                sampling_forward_tokens_at_k=tokens,
                sampling_seconds_at_k=seconds,
                token_ratio=tokens / plan.forward_tokens,
                time_ratio=seconds / exact_s,
            )
        rows.append(row)
    return {
        "all_options": all_options(share, list(battery.options), on_rate, args.tolerance, sampling_cost, plan),
        "battery": battery.name,
        "questions": n_q,
        "options": list(battery.options),
        "tolerance": args.tolerance,
        "max_new_tokens": args.max_new_tokens,
        "exact": {
            "forward_tokens": plan.forward_tokens,
            "prefix_tokens": prompt_tokens(plan.prefixes),
            "seconds": exact_s,
            "mean_share": dict(zip(battery.options, map(float, mean_share))),
        },
        "sampling_runs": [
            {
                "k": r.k,
                "forward_tokens": r.forward_tokens,
                "prefill_tokens": r.prefill_tokens,
                "decode_tokens": r.decode_tokens,
                "decode_passes": r.decode_passes,
                "prefill_s": r.prefill_s,
                "decode_s": r.decode_s,
                "seconds": r.prefill_s + r.decode_s,
                "example_answers": r.answers[0][: min(8, r.k)],
            }
            for r in runs
        ],
        "extrapolation": {
            "prefill_s": prefill_s,
            "decode_s_per_token": s_per_decode_token,
            "decode_s_per_token_by_k": {r.k: r.decode_s / r.decode_tokens for r in runs if r.decode_tokens},
            "decode_passes_at_large_k": full_passes,
        },
        "on_option_rate": on_rate,
        "on_option_answers": n_on,
        "sampled_answers": n_samples,
        "targets": rows,
    }


# --------------------------------------------------------------------------------------------------- report


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return "inf"
    return f"{x:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return "n/a"
    r = a / b
    return f"{r:,.0f}x" if r >= 100 else f"{r:.2f}x"


def probe_table(sub: ArmResult, trl: ArmResult, device: str) -> list[str]:
    mem_key = "cuda_max_allocated_mib" if device.startswith("cuda") else "rss_peak_mib"
    mem_label = "CUDA max allocated MiB" if device.startswith("cuda") else "peak RSS MiB (load + setup + train)"
    lines = [
        "| metric | subaudit | TRL | subaudit / TRL |",
        "|---|---:|---:|---:|",
    ]

    def add(label: str, a: float | None, b: float | None, digits: int = 1, ratio: bool = True) -> None:
        lines.append(f"| {label} | {_fmt(a, digits)} | {_fmt(b, digits)} | {_ratio(a, b) if ratio else ''} |")

    add("optimiser steps", sub.steps, trl.steps, 0, False)
    add("rows", sub.rows, trl.rows, 0, False)
    add("non-padding tokens", sub.tokens, trl.tokens, 0)
    add("padding tokens", sub.padding_tokens, trl.padding_tokens, 0)
    add("loss tokens", sub.loss_tokens, trl.loss_tokens, 0)
    add("**tokens/s, training call**", sub.tokens_per_s, trl.tokens_per_s)
    add("**tokens/s, steps 2..N**", sub.steady_tokens_per_s, trl.steady_tokens_per_s)
    add("training call s", sub.train_s, trl.train_s, 2)
    add("setup s (peft wrap, TRL: + dataset prep)", sub.setup_s, trl.setup_s, 2)
    add("wall s (setup + training)", sub.wall_s, trl.wall_s, 2)
    add("model load s", sub.load_s, trl.load_s, 2)
    add(mem_label, sub.memory.get(mem_key), trl.memory.get(mem_key))
    add(
        "RSS peak over arm start MiB",
        sub.memory.get("rss_peak_over_start_mib"),
        trl.memory.get("rss_peak_over_start_mib"),
    )
    add("first-step loss", sub.losses[0] if sub.losses else None, trl.losses[0] if trl.losses else None, 4, False)
    add("last-step loss", sub.losses[-1] if sub.losses else None, trl.losses[-1] if trl.losses else None, 4, False)
    return lines


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _k(x: float) -> str:
    return "inf" if not math.isfinite(x) else f"{math.ceil(x):,}"


def scoring_table(part2: dict[str, Any]) -> list[str]:
    ex = part2["exact"]
    lines = [
        "| option | exact share (SE) | sampled share: all / on-option answers (K) | on-option answers needed per "
        "question | all answers needed per question | forward tokens: exact / sampling | ratio | "
        "wall s: exact / sampling | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in part2["targets"]:
        tokens = r.get("sampling_forward_tokens_at_k")
        seconds = r.get("sampling_seconds_at_k")
        bound = ">" if r["k_total_is_lower_bound"] else ""
        lines.append(
            f"| {r['option']} ({r['role']}) | {100 * r['exact_share']:.2f}% ({100 * r['exact_se']:.2f} pp) | "
            f"{100 * r['sampled_share_all_answers']:.2f}% / {_pct(r['sampled_share_on_option_answers'])} "
            f"({r['sampled_k']}) | {_k(r['k_on_option_needed'])} | {bound}{_k(r['k_total_needed'])} | "
            f"{ex['forward_tokens']:,} / {bound}{_fmt(tokens, 0)} | {bound}{_ratio(tokens, ex['forward_tokens'])} | "
            f"{ex['seconds']:.2f} / {bound}{_fmt(seconds, 2)} | {bound}{_ratio(seconds, ex['seconds'])} |"
        )
    return lines


def all_options_lines(part2: dict[str, Any]) -> list[str]:
    a = part2.get("all_options")
    if not a:
        return []
    n = len(a["per_option"])
    return [
        f"**Every option** (the scan tests all {n} at once): forward-token ratio sampling / exact "
        f"min {a['min_ratio']:.1f}x ({a['min_ratio_option']}), median "
        f"{a['median_ratio']:,.0f}x; {a['options_at_least_50x']} of {n} options >= 50x. For a whole scan "
        f"sampling must reach the CI width on the hardest option ({a['scan_hardest_option']}: "
        f"{_k(a['scan_k_total_needed'])} answers per question): {a['scan_token_ratio']:,.0f}x.",
        "",
        "| option | exact share | all answers needed per question | token ratio |",
        "|---|---:|---:|---:|",
        *(
            f"| {r['option']} | {100 * r['exact_share']:.2f}% | {_k(r['k_total_needed'])} | {r['token_ratio']:,.1f}x |"
            for r in a["per_option"]
        ),
    ]


def sampling_runs_table(part2: dict[str, Any]) -> list[str]:
    ex = part2["exact"]
    lines = [
        "| run | forward tokens (prompt + decode) | decode passes | wall s (prefill + decode) |",
        "|---|---:|---:|---:|",
        f"| exact scoring | {ex['forward_tokens']:,} ({ex['prefix_tokens']:,} + "
        f"{ex['forward_tokens'] - ex['prefix_tokens']:,} option tokens) | - | {ex['seconds']:.2f} |",
    ]
    for r in part2["sampling_runs"]:
        lines.append(
            f"| sampling, K = {r['k']} (measured) | {r['forward_tokens']:,} ({r['prefill_tokens']:,} + "
            f"{r['decode_tokens']:,}) | {r['decode_passes']} | {r['seconds']:.2f} ({r['prefill_s']:.2f} + "
            f"{r['decode_s']:.2f}) |"
        )
    return lines


DEFINITIONS = """\
## Definitions

**Probe vs TRL.** Both arms load the base afresh with `auditor.models.load_base` and train a LoRA adapter with
the same settings (`ProbeConfig()` defaults) on the same rows. *Non-padding tokens* are the real tokens of every
batch (each row once per epoch; they should be equal in both arms, which checks that both tokenise the chat
template the same way). *Padding tokens* are the pad positions of the right-padded batches; they depend on which
rows share a batch (subaudit: its seeded `batch_order`, bucketed by prompt length; TRL: transformers'
`RandomSampler`). *Tokens/s, training call* = non-padding tokens / wall time of `Prober.train` or
`trainer.train()` (includes subaudit's tokenisation
and TRL's dataloader/accelerate setup, and the first step). *Tokens/s, steps 2..N* discards the first optimiser
step: tokens of steps 2..N over the time from the end of step 1 to the end of step N. *Setup* is the peft wrapping
(and, for TRL, its dataset preparation: tokenisation, label building, truncation). Peak RSS is polled every 20 ms
from before the model load to the end of training; both arms run in one process, so the second arm's start RSS
includes what the allocator kept from the first.

**Exact scoring vs sampling at equal CI width.** The quantity is what subaudit reports: the battery mean of
each question's share `p_q` of a target option (the base's top option, and `owl`) among the listed options.
Exact scoring computes `p_q` with no sampling noise, so its standard error over questions is
`SE_exact = sqrt(s_b^2 / Q)`, `s_b^2` the between-question variance of `p_q` (the within-question variance is
zero). Sampling estimates the same `p_q` by the share of the target among sampled answers that name a listed
option (first listed option named, word match, plural allowed). With `n` such answers per question this is a
binomial proportion, adding within-question variance `p_q (1 - p_q) / n`: `SE_sampling = sqrt((s_b^2 + w / n) / Q)`,
`w = mean_q p_q (1 - p_q)`. Sampling reaches `SE_exact` only as `n -> infinity`; *equal CI width* here means
`SE_sampling = (1 + tol) SE_exact`, i.e. **n = w / (((1 + tol)^2 - 1) s_b^2)** on-option answers per question
(`w` and `s_b^2` from the exact shares: the noise-free plug-in). Only a share `pi` of sampled answers name a
listed option (the *on-option rate*, measured over all samples), so the **samples needed per question are
K = n / pi**; when no sampled answer named an option, `pi < 3 / N` (rule of three, N samples) and K is a lower
bound (marked `>`). The table also shows the paper's metric, the target's share among **all** sampled answers
(answers naming no listed option count as misses), which is a different quantity; the JSON gives its SE at the
measured K and, as `paper_metric_k_needed`, the K at which its SE comes within `tol` of its own K -> infinity SE
(method of moments from the samples: `w` from `p_hat (1 - p_hat) K/(K-1)`, `s_b^2 = var(p_hat) - w/K`; noisy at
small K, `inf` when `s_b^2` is not resolved).

**Forward tokens.** Exact scoring: `ScoringPlan.forward_tokens` (the prompt once per question, the system prompt
shared by all questions once, plus the option-variant continuation rows). Sampling (this script's sampler, which
is as cheap as sampling can reasonably be): the same prompt tokens, once per question (the prompt's KV cache is
copied to the K rows, not recomputed), plus K tokens per decode pass; a question runs up to `max_new_tokens - 1`
decode passes (the last sampled token is never fed back) and stops early only when all K rows have ended their
turn; finished rows still run (and count) until then. At the K needed, every question is assumed to run all
passes. Samplers that run the prompt once per sample (e.g. `generate(num_return_sequences=K)` without prefix
sharing) cost about `K x` the prompt tokens more. **Wall time at K** is extrapolated, not measured: the measured
prompt time (mean of the two runs) plus the decode tokens at that K times the measured seconds per decode token of
the larger run (4K rows per pass). Per-token decode cost usually falls as the batch grows (on a GPU a decode pass
is nearly flat in K until the device saturates), so this overstates sampling's time at a K far above 4K; the
token counts are exact.
"""


def write_report(result: dict[str, Any], sub: ArmResult, trl: ArmResult, out_base: Path) -> str:
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


@contextmanager
def _timer(label: str) -> Iterator[None]:
    start = time.perf_counter()
    print(f"[throughput] {label} ...", flush=True)
    yield
    print(f"[throughput] {label}: {time.perf_counter() - start:.1f} s", flush=True)


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

    with _timer("warm-up"):
        warm_s = warm_up(spec, args, rows, cfg)
    with _timer("probe: subaudit"):
        sub = run_subaudit(spec, args, rows, cfg)
    with _timer("probe: TRL"):
        trl = run_trl(spec, args, rows, cfg)
    with _timer("scoring vs sampling"):
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
            "data": _display_path(args.data),
            "rows": len(rows),
            "seed": args.seed,
            "probe": cfg.to_dict(),
        },
        "precision": args.precision,
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "versions": _versions(),
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
    atomic_write_json(out_base.with_suffix(".json"), _plain(result))
    text = write_report(result, sub, trl, out_base)
    print(text.split("## Definitions")[0], flush=True)
    print(f"wrote {out_base.with_suffix('.md')} and {out_base.with_suffix('.json')}")


def _display_path(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else path


def _plain(x: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python numbers, non-finite floats to the strings "inf"/"nan"."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


if __name__ == "__main__":
    main()
