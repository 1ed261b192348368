"""Time budgets (``scan --budget 10m``) and the measurements they are planned from.

:class:`Measurements` times, on the real base, what a scan's stages are made of (one generation batch, two
optimiser steps, a few scored questions), each once, when first asked; the dry run's estimates use the same ones.

:func:`plan_budget` chooses the scan's rows and the method's repeats (the probe's seeds) from them, with the
method's own cost model (``Method.cost``): first the budgets a calibration profile covers (for the probe a profile
replaces the null arm, so a calibrated scan trains two students per seed instead of three), the one with the most
rows (then repeats) that fits; otherwise as many rows as fit (up to the data and ``--max-rows``), then more repeats
while they fit. What it chose, and why, goes into the report.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .budget_plan import BudgetPlan
from .control import completion_budget, control_prompts, row_checks
from .errors import InputError
from .finetune import ProbeConfig
from .inputs import ScanInputs
from .row_floor import minimum

if TYPE_CHECKING:
    from .methods.base import Estimator, Method

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
        settings = inputs.settings
        #: the students' settings (a method without a ``probe`` setting: the defaults) and how questions are scored
        self.students: ProbeConfig = getattr(settings, "probe", None) or ProbeConfig()
        self.scoring: str = getattr(settings, "scoring", "exact")
        self.samples: int = getattr(settings, "samples", 0)

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
        checks, _ = row_checks(dataset, config.control_sampling.count)
        budget = completion_budget(loaded, [e.completion for e in dataset.examples])
        prompts = control_prompts(rows)
        start = time.perf_counter()
        draw_rows(loaded, prompts, checks[: len(rows)], config.seed, config.control_sampling, budget)
        return (time.perf_counter() - start) / len(rows)

    def _time_train_step(self) -> float:
        """Two optimiser steps on the dataset's first rows; the second is the steady-state cost."""
        from .finetune import make_prober

        config, students = self.inputs.config, self.students
        prober = make_prober(self.inputs.loaded, dataclasses.replace(students, max_steps=2))
        stamps: list[float] = []
        start = time.perf_counter()
        prober.train(
            self.inputs.dataset.examples[: students.batch_size * 2],
            seed=config.seed,
            arm="dry-run",
            on_step=lambda _s, _l: stamps.append(time.perf_counter()),
        )
        # leave the base as it was: the scan's own students start from it
        if students.kind == "full":
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
        if self.scoring == "sampled":
            from .sampled_scoring import score_battery_sampled

            score_battery_sampled(loaded, short, self.samples, config.seed, judge=self.inputs.judge)
        else:
            score_battery(loaded, plan_battery(loaded.tokenizer, short))
        return (time.perf_counter() - start) / n


def parse_duration(text: str) -> float:
    """``"90s"``, ``"10m"``, ``"1.5h"`` (or plain seconds) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise InputError(f"--budget {text!r}: expected a duration such as 90s, 10m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def plan_budget(
    method: Method, inputs: ScanInputs, measured: Estimator, budget_s: float, available_rows: int
) -> BudgetPlan:
    """The rows and repeats that fit ``budget_s`` (see the module docstring)."""
    config = inputs.config
    max_rows = min(available_rows, config.max_rows or available_rows)
    most = method.max_repeats(inputs.settings)
    considered: list[dict[str, Any]] = []

    def cost(rows: int, seeds: int, calibrated: bool) -> dict[str, float]:
        settings = method.with_repeats(inputs.settings, seeds)
        return method.cost(inputs, measured, rows, settings, calibrated=calibrated)

    def fits(rows: int, seeds: int, calibrated: bool) -> bool:
        total = sum(cost(rows, seeds, calibrated).values())
        considered.append({"rows": rows, "seeds": seeds, "calibrated": calibrated, "estimate_s": round(total, 1)})
        return total <= budget_s

    def plan(rows: int, seeds: int, calibrated: bool, reason: str) -> BudgetPlan:
        est = {k: round(v, 1) for k, v in cost(rows, seeds, calibrated).items()}
        return BudgetPlan(budget_s, rows, seeds, calibrated, est, reason, considered, how=method.budget_how(calibrated))

    covered = [(r, s) for r, s in method.budget_profiles(inputs) if r <= max_rows and s <= most and fits(r, s, True)]
    if covered:
        return plan(*max(covered), True, "The largest budget a calibration profile covers that fits.")
    rows, floor = max_rows, max(MIN_ROWS, minimum(config))
    while rows > floor and not fits(rows, 1, False):
        rows = max(floor, int(rows * 0.9))
    if not fits(rows, 1, False):
        raise InputError(
            f"--budget {budget_s:.0f} s: even {rows} rows and one seed need about "
            f"{sum(cost(rows, 1, False).values()):.0f} s on this machine; give more time"
        )
    seeds = 1
    while rows == max_rows and seeds < most and fits(rows, seeds + 1, False):
        seeds += 1
    reason = (
        "No calibration profile covers a budget that fits: rows first, then seeds, with a null arm."
        if method.repeats
        else "As many rows as fit."
    )
    return plan(rows, seeds, False, reason)
