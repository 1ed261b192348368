"""``auditor.dry_run``: check a scan's inputs and estimate its cost without training anything.

Everything a scan validates is validated (data, base, batteries, probe settings); then one optimiser
step, a few scored questions and (when the control is not cached) one generation batch are timed on the
real base, and each stage's time is extrapolated from them. The estimate is for a cold run: a control
already in the cache or students already in the run folder make the real scan faster.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from .data import load_dataset
from .models import resolve_base
from .traits import resolve_batteries

#: Questions scored to time the scoring stage.
TIMED_QUESTIONS = 3


@dataclass
class DryRunResult:
    """What a scan would do and roughly how long each stage would take."""

    dataset: dict[str, Any]
    base: dict[str, Any]
    batteries: list[dict[str, Any]]
    arms: list[str]
    seeds: list[int]
    steps_per_run: int
    training_tokens_per_run: int
    first_example: dict[str, Any]
    measured: dict[str, float]
    estimate_s: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.estimate_s.values())


def _time_scoring(loaded: Any, batteries: list[Any], config: Any = None, judge: Any = None) -> float:
    """Seconds per scored question, from the first questions of the first battery (sampled mode: sampled and
    classified as the scan would)."""
    from .scoring import plan_battery, score_battery

    battery = batteries[0]
    n = min(TIMED_QUESTIONS, len(battery.questions))
    short = dataclasses.replace(battery, questions=battery.questions[:n])
    if getattr(battery, "items", None):
        short = dataclasses.replace(short, items=battery.items[:n])
    if config is not None and config.scoring == "sampled":
        from .sampling import score_battery_sampled

        start = time.perf_counter()
        score_battery_sampled(loaded, short, config.samples, config.seed, judge=judge)
        return (time.perf_counter() - start) / n
    plan = plan_battery(loaded.tokenizer, short)
    start = time.perf_counter()
    score_battery(loaded, plan)
    return (time.perf_counter() - start) / n


def dry_run(config: Any) -> DryRunResult:
    """Validate ``config`` (a :class:`~auditor.pipeline.ScanConfig`) and estimate each stage's time."""
    from .control import _completion_budget, generate_completions
    from .pipeline import check_batteries, load_judge, load_model
    from .probe import Prober, plan_steps

    config.validate()
    dataset = load_dataset(config.data, max_rows=config.max_rows, seed=config.seed)
    batteries = resolve_batteries(config.traits)
    check_batteries(config, batteries)
    spec = resolve_base(config.base, config.revision)
    start = time.perf_counter()
    loaded = load_model(config, spec)
    judge = load_judge(config)
    load_s = time.perf_counter() - start
    arms = ["dataset", "control"] + (["null"] if config.null_arm else [])
    seeds = [config.seed + i for i in range(config.seeds)]
    steps = plan_steps(len(dataset), config.probe)

    # one generation batch, as the control stage would run it
    measured: dict[str, float] = {"load_base_s": round(load_s, 2)}
    control_draws = (0 if config.control else 1) + (1 if config.null_arm else 0)
    gen_batch = min(16, len(dataset))
    if control_draws:
        prompts = [list(e.prompt) for e in dataset.examples[:gen_batch]]
        budget = _completion_budget(loaded, [e.completion for e in dataset.examples])
        start = time.perf_counter()
        generate_completions(loaded, prompts, seed=config.seed, fmt=dataset.completion_format, max_new_tokens=budget)
        measured["generation_batch_s"] = round(time.perf_counter() - start, 3)

    # two optimiser steps on the dataset's first rows; the second one is the steady-state cost
    prober = Prober(loaded, dataclasses.replace(config.probe, max_steps=2))
    stamps: list[float] = []
    start = time.perf_counter()
    prober.train(
        dataset.examples[: config.probe.batch_size * 2],
        seed=config.seed,
        arm="dry-run",
        on_step=lambda _s, _l: stamps.append(time.perf_counter()),
    )
    step_s = stamps[1] - stamps[0] if len(stamps) > 1 else stamps[0] - start
    measured["train_step_s"] = round(step_s, 3)
    measured["score_question_s"] = round(_time_scoring(loaded, batteries, config, judge), 3)

    encoded = prober.encode(dataset.examples)
    lengths = [len(ids) for ids, _ in encoded]
    tokens_per_run = round(sum(lengths) / len(lengths) * config.probe.batch_size * steps)
    ids, labels = encoded[0]
    tok = loaded.tokenizer
    n_questions = sum(len(b.questions) for b in batteries)
    runs = len(arms) * len(seeds)
    estimate = {
        "load_base": load_s,
        "control": control_draws * measured.get("generation_batch_s", 0.0) * len(dataset) / max(gen_batch, 1),
        "probe": runs * steps * step_s,
        "scoring": (1 + runs) * n_questions * measured["score_question_s"],
    }
    return DryRunResult(
        dataset={
            "path": dataset.path,
            "rows_total": dataset.total_rows,
            "rows_sampled": len(dataset),
            "format": dataset.completion_format,
            "tokens_per_row_mean": round(sum(lengths) / len(lengths), 1),
            "tokens_per_row_max": max(lengths),
        },
        base={"requested": spec.requested, "location": spec.location, "device": loaded.device, "dtype": loaded.dtype},
        batteries=[{"name": b.name, "kind": b.kind, "questions": len(b.questions)} for b in batteries],
        arms=arms,
        seeds=seeds,
        steps_per_run=steps,
        training_tokens_per_run=tokens_per_run,
        first_example={
            "text": tok.decode(ids),
            "token_ids": ids,
            "tokens": tok.convert_ids_to_tokens(ids),
            "loss_mask": [x != -100 for x in labels],
        },
        measured=measured,
        estimate_s={k: round(v, 1) for k, v in estimate.items()},
    )
