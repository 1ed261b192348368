"""Part 1 of the throughput benchmark: subaudit's probe fine-tune against TRL + peft (run by ``throughput.py``).

The same base (loaded with ``auditor.models.load_base``, freshly for each arm), the same first ``--rows`` rows of
the dataset and the same LoRA settings (``ProbeConfig()``'s defaults: r 8, alpha 16, the 7 projection modules,
lr 1e-3, batch 8, 1 epoch, max length 512, no dropout, linear warm-up/decay), trained (a) by ``Prober.train`` and
(b) by TRL's ``SFTTrainer`` with a peft ``LoraConfig`` on a conversational prompt-completion dataset with
``completion_only_loss=True`` (no eval, no checkpoints, ``report_to="none"``, no gradient checkpointing,
dataloader without workers), at the same precision: bf16 autocast for both where the device has native bf16
(``--precision auto``), fp32 for both with ``--precision fp32``. Both arms run in this process, one after the
other, after an untimed warm-up pass that both share.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench_common import PeakMemory, fmt, fmt_ratio, free_memory, sync_device

from auditor.chat import encode_training_example
from auditor.data import Example
from auditor.finetune import ProbeConfig, Prober, pad_batch, plan_steps
from auditor.models import ModelSpec, load_base


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
    sync_device(dev)
    del loaded, out
    free_memory(args.device)
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
            sync_device(dev)
            ends.append(time.perf_counter())

        t3 = time.perf_counter()
        stats = prober.train(rows, seed=args.seed, arm="bench", on_step=on_step)
        sync_device(loaded.device)
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
    free_memory(args.device)
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
            sync_device(args.device)
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
            sync_device(loaded.device)
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
    free_memory(args.device)
    return result


def probe_table(sub: ArmResult, trl: ArmResult, device: str) -> list[str]:
    """The report's markdown table comparing the two arms, one metric a row, with the subaudit / TRL ratio."""
    mem_key = "cuda_max_allocated_mib" if device.startswith("cuda") else "rss_peak_mib"
    mem_label = "CUDA max allocated MiB" if device.startswith("cuda") else "peak RSS MiB (load + setup + train)"
    lines = [
        "| metric | subaudit | TRL | subaudit / TRL |",
        "|---|---:|---:|---:|",
    ]

    def add(label: str, a: float | None, b: float | None, digits: int = 1, ratio: bool = True) -> None:
        lines.append(f"| {label} | {fmt(a, digits)} | {fmt(b, digits)} | {fmt_ratio(a, b) if ratio else ''} |")

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


#: The "Definitions" paragraph of the report for this part (markdown).
PROBE_DEFINITIONS = """\
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
"""
