"""``auditor.dry_run``: check a scan's inputs and estimate its cost without training anything.

The same setup as a scan (:func:`auditor.prepare.prepare_inputs`: data, batteries, base, the method's
settings), then the method estimates each of its stages from what the dry run measures on the real base when
the method first asks: one generation batch, two optimiser steps, a few scored questions. The estimate is for
a cold run: a control already in the cache or students already in the run folder make the real scan faster.
Nothing is written.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .chat import encode_training_example
from .config import ScanConfig
from .control import completion_budget
from .data import DatasetInfo
from .inputs import ScanInputs
from .methods import get_method
from .models import BaseInfo
from .prepare import prepare_inputs

#: Questions scored to time the scoring stage.
TIMED_QUESTIONS = 3
#: Prompts sampled to time the control stage.
TIMED_PROMPTS = 16


@dataclass
class DryRunResult:
    """What a scan would do and roughly how long each stage would take.

    Attributes:
        method: the detection method.
        plan: what the method would run, in one line.
        dataset, base: as a scan would record them.
        batteries: name, kind and question count of each battery.
        tokens_per_row_mean, tokens_per_row_max: training tokens per row (chat template included).
        first_example: the first row as text, token ids, tokens and which tokens carry loss.
        measured: the timings taken on the real base (seconds).
        estimate_s: seconds per stage of a cold run.
    """

    method: str
    plan: str
    dataset: DatasetInfo
    base: BaseInfo
    batteries: list[dict[str, Any]]
    tokens_per_row_mean: float
    tokens_per_row_max: int
    first_example: dict[str, Any]
    measured: dict[str, float]
    estimate_s: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.estimate_s.values())


class Measurements:
    """The dry run's timings on the real base, each taken once, when a method's estimate first asks for it."""

    def __init__(self, inputs: ScanInputs):
        self.inputs = inputs
        self.seconds: dict[str, float] = {}

    def _once(self, name: str, measure: Callable[[], float]) -> float:
        if name not in self.seconds:
            self.seconds[name] = round(measure(), 4)
        return self.seconds[name]

    def generation_per_row(self) -> float:
        return self._once("generation_per_row_s", self._time_generation)

    def train_step(self) -> float:
        return self._once("train_step_s", self._time_train_step)

    def score_question(self) -> float:
        return self._once("score_question_s", self._time_scoring)

    def _time_generation(self) -> float:
        """One generation batch, decoded as the control stage would decode it."""
        from .sampling import generate_completions

        dataset, loaded = self.inputs.dataset, self.inputs.loaded
        rows = dataset.examples[:TIMED_PROMPTS]
        budget = completion_budget(loaded, [e.completion for e in dataset.examples])
        start = time.perf_counter()
        prompts = [list(e.prompt) for e in rows]
        generate_completions(loaded, prompts, self.inputs.config.seed, dataset.completion_format, max_new_tokens=budget)
        return (time.perf_counter() - start) / len(rows)

    def _time_train_step(self) -> float:
        """Two optimiser steps on the dataset's first rows; the second is the steady-state cost."""
        from .finetune import make_prober

        config = self.inputs.config
        prober = make_prober(self.inputs.loaded, dataclasses.replace(config.probe, max_steps=2))
        stamps: list[float] = []
        start = time.perf_counter()
        prober.train(
            self.inputs.dataset.examples[: config.probe.batch_size * 2],
            seed=config.seed,
            arm="dry-run",
            on_step=lambda _s, _l: stamps.append(time.perf_counter()),
        )
        return stamps[1] - stamps[0] if len(stamps) > 1 else stamps[0] - start

    def _time_scoring(self) -> float:
        """Seconds per scored question, from the first questions of the first battery (sampled mode: sampled and
        classified as the scan would)."""
        from .scoring import plan_battery, score_battery

        config, loaded = self.inputs.config, self.inputs.loaded
        battery = self.inputs.batteries[0]
        n = min(TIMED_QUESTIONS, len(battery.questions))
        short = dataclasses.replace(battery, questions=battery.questions[:n])
        if battery.items:
            short = dataclasses.replace(short, items=battery.items[:n])
        start = time.perf_counter()
        if config.scoring == "sampled":
            from .sampled_scoring import score_battery_sampled

            score_battery_sampled(loaded, short, config.samples, config.seed, judge=self.inputs.judge)
        else:
            score_battery(loaded, plan_battery(loaded.tokenizer, short))
        return (time.perf_counter() - start) / n


def dry_run(config: ScanConfig) -> DryRunResult:
    """Validate ``config`` as a scan would and estimate each of its method's stages."""
    start = time.perf_counter()
    inputs = prepare_inputs(config)
    load_s = time.perf_counter() - start
    method = get_method(config.method)
    measured = Measurements(inputs)
    estimate = {"load_base": load_s, **method.estimate(inputs, measured)}
    tok = inputs.loaded.tokenizer
    limit = config.probe.max_length
    lengths = [len(encode_training_example(tok, e.prompt, e.completion)[0][:limit]) for e in inputs.dataset.examples]
    first = inputs.dataset.examples[0]
    ids, labels = (x[:limit] for x in encode_training_example(tok, first.prompt, first.completion))
    return DryRunResult(
        method=method.name,
        plan=method.plan(inputs),
        dataset=inputs.dataset.info(),
        base=inputs.loaded.info(),
        batteries=[{"name": b.name, "kind": b.kind, "questions": len(b.questions)} for b in inputs.batteries],
        tokens_per_row_mean=round(sum(lengths) / len(lengths), 1),
        tokens_per_row_max=max(lengths),
        first_example={
            "text": tok.decode(ids),
            "token_ids": ids,
            "tokens": tok.convert_ids_to_tokens(ids),
            "loss_mask": [x != -100 for x in labels],
        },
        measured={"load_base_s": round(load_s, 2), **measured.seconds},
        estimate_s={k: round(v, 1) for k, v in estimate.items()},
    )
