"""Time budgets (``scan --budget 10m``) and the measurements they are planned from.

:class:`Measurements` times, on the real base, what a scan's stages are made of (one generation batch, two
optimiser steps, a few scored questions), each once, when first asked; the dry run's estimates use the same ones.

:func:`plan_budget` chooses the scan's rows and seeds from them: first the budgets a calibration profile covers
(a profile replaces the null arm, so a calibrated scan trains two students per seed instead of three), the one
with the most rows (then seeds) that fits; otherwise, without a profile, as many rows as fit (up to the data and
``--max-rows``), then more seeds while they fit. What it chose, and why, goes into the report.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable
from typing import Any

from .budget_plan import BudgetPlan
from .control import completion_budget, row_checks
from .errors import InputError
from .inputs import ScanInputs

#: Questions scored to time the scoring stage.
TIMED_QUESTIONS = 3
#: Prompts sampled to time the control stage.
TIMED_PROMPTS = 16
#: The fewest rows a budget may choose (fewer train too few steps to say anything).
MIN_ROWS = 40


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
        """Control rows for the dataset's first prompts, drawn as the control stage draws them (its sampler, checks
        and budget; ``auto``'s pilot included, so a short timed draw overstates its share a little)."""
        from .conditional import draw_rows

        dataset, loaded, config = self.inputs.dataset, self.inputs.loaded, self.inputs.config
        rows = dataset.examples[:TIMED_PROMPTS]
        checks, _ = row_checks(dataset)
        budget = completion_budget(loaded, [e.completion for e in dataset.examples])
        prompts: list[Any] = [e.user_text if e.is_text else list(e.prompt) for e in rows]
        start = time.perf_counter()
        draw_rows(loaded, prompts, checks[: len(rows)], config.seed, config.control_sampling, budget)
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
        # leave the base as it was: the scan's own students start from it
        if config.probe.kind == "full":
            prober.reset_adapter(0)
        else:
            self.inputs.loaded.model = prober.model.unload()
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


def parse_duration(text: str) -> float:
    """``"90s"``, ``"10m"``, ``"1.5h"`` (or plain seconds) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise InputError(f"--budget {text!r}: expected a duration such as 90s, 10m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def estimate(inputs: ScanInputs, measured: Measurements, rows: int, seeds: int, calibrated: bool) -> dict[str, float]:
    """Seconds per stage of a cold probe scan of ``rows`` rows and ``seeds`` seeds (base loading excluded)."""
    config = inputs.config
    draws = (0 if config.control else 1) + (0 if calibrated else 1)
    arms = 2 if calibrated else 3
    questions = sum(len(b.questions) for b in inputs.batteries)
    steps = max(1, math.ceil(rows / config.probe.batch_size * config.probe.epochs))
    return {
        "control": draws * rows * measured.generation_per_row(),
        "probe": arms * seeds * steps * measured.train_step(),
        "scoring": (1 + arms * seeds) * questions * measured.score_question(),
    }


def plan_budget(inputs: ScanInputs, measured: Measurements, budget_s: float, available_rows: int) -> BudgetPlan:
    """The rows and seeds that fit ``budget_s`` (see the module docstring)."""
    from .calibration.lookup import budgets_with_profiles

    config = inputs.config
    max_rows = min(available_rows, config.max_rows or available_rows)
    considered: list[dict[str, Any]] = []

    def fits(rows: int, seeds: int, calibrated: bool) -> bool:
        total = sum(estimate(inputs, measured, rows, seeds, calibrated).values())
        considered.append({"rows": rows, "seeds": seeds, "calibrated": calibrated, "estimate_s": round(total, 1)})
        return total <= budget_s

    calibrated = [
        (r, s) for r, s in budgets_with_profiles(inputs) if r <= max_rows and s <= config.seeds and fits(r, s, True)
    ]
    if calibrated:
        rows, seeds = max(calibrated)
        reason = "The largest budget a calibration profile covers that fits."
        return _plan(inputs, measured, budget_s, rows, seeds, True, reason, considered)
    rows = max_rows
    while rows > MIN_ROWS and not fits(rows, 1, False):
        rows = max(MIN_ROWS, int(rows * 0.9))
    if not fits(rows, 1, False):
        raise InputError(
            f"--budget {budget_s:.0f} s: even {rows} rows and one seed need about "
            f"{sum(estimate(inputs, measured, rows, 1, False).values()):.0f} s on this machine; give more time"
        )
    seeds = 1
    while rows == max_rows and seeds < config.seeds and fits(rows, seeds + 1, False):
        seeds += 1
    reason = "No calibration profile covers a budget that fits: rows first, then seeds, with a null arm."
    return _plan(inputs, measured, budget_s, rows, seeds, False, reason, considered)


def _plan(
    inputs: ScanInputs,
    measured: Measurements,
    budget_s: float,
    rows: int,
    seeds: int,
    calibrated: bool,
    reason: str,
    considered: list[dict[str, Any]],
) -> BudgetPlan:
    est = {k: round(v, 1) for k, v in estimate(inputs, measured, rows, seeds, calibrated).items()}
    return BudgetPlan(budget_s, rows, seeds, calibrated, est, reason, considered)
