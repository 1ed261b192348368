"""Teachers with a known trait: ``subaudit teacher``.

Fine-tunes a base with LoRA on a small chat set that expresses a trait (an owl lover, a misaligned
persona ...), saves the adapter in peft's format (safetensors) for ``subaudit generate --adapter``, and
scores the teacher against the base on trait batteries, so the trait is measured before any data is made.

A teacher trained on chat alone may stop writing the format its data will take: the campaign's owl teacher found a
valid number list for 0 of 16 prompts in 400 tries, so its data could only be importance-resampled, with the
constrained sampler's bias. ``keep_format`` mixes rows the base itself wrote in that format into the training set;
the same owl teacher then kept its trait (owl 0.8 -> 98.3 %) and wrote valid lists for 16 of 16 prompts by
rejection (``benchmarks/results/format_teacher.md``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError
from .io import atomic_write_json

if TYPE_CHECKING:
    from .data import Example

#: The adapter files ``subaudit generate --adapter`` reads.


@dataclass
class TeacherConfig:
    """Settings of ``subaudit teacher``.

    Attributes:
        chat: the chat set (any file ``scan`` reads; the assistant turns carry the loss).
        out: the folder the adapter and ``teacher.json`` are written to (must be new or empty).
        base: the base to fine-tune (``None`` = embedded default).
        traits: batteries the teacher is scored on against the base.
        rank, alpha, learning_rate, epochs, batch_size: the LoRA fine-tune (stronger than a probe's
            defaults: a teacher should hold its trait).
        seed: adapter initialisation, row order, and which ``keep_format`` rows are used.
        keep_format: rows the base itself wrote in the format the teacher's data will take (e.g. ``subaudit
            generate`` without an adapter), trained on with the chat set so that the teacher keeps writing that
            format and its data can be drawn exactly; ``None``: the chat set alone.
        keep_format_rows: how many ``keep_format`` rows (``None``: all of them).
        device, precision, trust_remote_code, allow_pickle, chat_template: as for ``scan``.
    """

    chat: str
    out: str
    base: str | None = None
    traits: list[str] = field(default_factory=lambda: ["animal", "tree"])
    rank: int = 16
    alpha: int = 32
    learning_rate: float = 1e-3
    epochs: float = 3.0
    batch_size: int = 8
    seed: int = 0
    keep_format: str | None = None
    keep_format_rows: int | None = None
    device: str = "auto"
    precision: str = "auto"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    chat_template: str | None = None


@dataclass
class TraitScore:
    """One option (or choice label) of a battery: its share for the base and for the teacher, pp."""

    battery: str
    option: str
    base: float
    teacher: float

    @property
    def change(self) -> float:
        return self.teacher - self.base


@dataclass
class TeacherResult:
    """What ``subaudit teacher`` trained and measured."""

    out: str
    steps: int
    tokens: int
    seconds: float
    first_loss: float
    final_loss: float
    scores: list[TraitScore]

    def top(self, battery: str) -> TraitScore:
        """The option whose share rose most in ``battery``."""
        return max((s for s in self.scores if s.battery == battery), key=lambda s: s.change)


def training_rows(config: TeacherConfig) -> tuple[list[Example], list[Example]]:
    """The chat set's rows and the ``keep_format`` rows the teacher also learns (``keep_format_rows`` of them,
    chosen with ``config.seed``; none without ``keep_format``)."""
    from .data import load_dataset

    chat = list(load_dataset(config.chat).examples)
    if config.keep_format is None:
        if config.keep_format_rows is not None:
            raise InputError("--keep-format-rows needs --keep-format (the file of the base's own rows)")
        return chat, []
    rows = list(load_dataset(config.keep_format).examples)
    n = len(rows) if config.keep_format_rows is None else config.keep_format_rows
    if not 1 <= n <= len(rows):
        raise InputError(f"{config.keep_format}: --keep-format-rows {n}: the file has {len(rows)} rows")
    return chat, random.Random(config.seed).sample(rows, n)


def train_teacher(config: TeacherConfig, on_step: Callable[[int, float], None] | None = None) -> TeacherResult:
    """Fine-tune ``config.base`` on ``config.chat`` (and the ``keep_format`` rows), save the adapter in ``config.out``,
    score teacher vs base."""
    from .finetune import ProbeConfig, Prober
    from .models import LoadOptions, resolve_base
    from .scoring import plan_battery, score_battery
    from .traits import resolve_batteries

    out = Path(config.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: exists and is not an empty folder; choose a new --out")
    chat, kept = training_rows(config)
    rows = [*chat, *kept]
    batteries = resolve_batteries(config.traits)
    options = LoadOptions(config.device, config.precision, config.trust_remote_code, config.allow_pickle)
    loaded = options.load(resolve_base(config.base), chat_template=config.chat_template)
    probe = ProbeConfig(
        rank=config.rank,
        alpha=config.alpha,
        learning_rate=config.learning_rate,
        epochs=config.epochs,
        batch_size=config.batch_size,
    )
    prober = Prober(loaded, probe)
    start = time.perf_counter()
    stats = prober.train(rows, seed=config.seed, arm="teacher", on_step=on_step)
    seconds = time.perf_counter() - start
    plans = [plan_battery(loaded.tokenizer, b) for b in batteries]
    teacher_shares = {p.battery.name: score_battery(loaded, p).share.mean(axis=0) * 100 for p in plans}
    with prober.disabled():
        base_shares = {p.battery.name: score_battery(loaded, p).share.mean(axis=0) * 100 for p in plans}
    scores = [
        TraitScore(b.name, option, float(base_shares[b.name][k]), float(teacher_shares[b.name][k]))
        for b in batteries
        for k, option in enumerate(b.options)
    ]
    prober.save_peft(out)
    result = TeacherResult(str(out), stats.steps, stats.tokens, seconds, stats.first_loss, stats.final_loss, scores)
    atomic_write_json(
        out / "teacher.json",
        {
            "config": asdict(config),
            "base": {"location": loaded.spec.display, "fingerprint": loaded.fingerprint},
            "train": {k: v for k, v in asdict(stats).items() if k != "losses"} | {"losses": stats.losses},
            "rows": {"chat_set": len(chat), "keep_format": len(kept)},
            "scores": [asdict(s) | {"change": round(s.change, 4)} for s in scores],
        },
    )
    return result
