"""``auditor.dry_run``: check a scan's inputs and estimate its cost without training anything.

The same setup as a scan (:func:`auditor.prepare.prepare_inputs`: data, batteries, base, the method's
settings), then the method estimates each of its stages from what the dry run measures on the real base when
the method first asks: one generation batch, two optimiser steps, a few scored questions. The estimate is for
a cold run: a control already in the cache or students already in the run folder make the real scan faster.
Nothing is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .budget import Measurements
from .config import ScanConfig
from .data import DatasetInfo
from .finetune import encode_row
from .methods import get_method
from .models import BaseInfo
from .prepare import prepare_inputs
from .settings import resolve


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
    budget: str | None
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


def dry_run(config: ScanConfig, config_file: str | Path | bool | None = None) -> DryRunResult:
    """Validate ``config`` as a scan would (over the config file, as :func:`auditor.scan` reads it) and estimate each
    of its method's stages."""
    config = resolve(config, None, config_file).config
    start = time.perf_counter()
    inputs = prepare_inputs(config)
    load_s = time.perf_counter() - start
    method = get_method(config.method)
    measured = Measurements(inputs)
    estimate = {"load_base": load_s, **method.estimate(inputs, measured)}
    tok = inputs.loaded.tokenizer
    limit = method.training_length(inputs.settings)
    lengths = [len(encode_row(tok, e, limit)[0]) for e in inputs.dataset.examples]
    ids, labels = encode_row(tok, inputs.dataset.examples[0], limit)
    return DryRunResult(
        method=method.name,
        plan=method.plan(inputs),
        budget=inputs.budget.line() if inputs.budget else None,
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
