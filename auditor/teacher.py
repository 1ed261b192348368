"""Teachers with a known trait: ``subaudit teacher``.

Fine-tunes a base with LoRA on a small chat set that expresses a trait (an owl lover, a misaligned
persona ...), saves the adapter in peft's format (safetensors) for ``subaudit generate --adapter``, and
scores the teacher against the base on trait batteries, so the trait is measured before any data is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InputError
from .io import atomic_write_json

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
        seed: adapter initialisation and row order.
        device, precision, trust_remote_code, allow_pickle: as for ``scan``.
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
    device: str = "auto"
    precision: str = "auto"
    trust_remote_code: bool = False
    allow_pickle: bool = False


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


def train_teacher(config: TeacherConfig, on_step: Callable[[int, float], None] | None = None) -> TeacherResult:
    """Fine-tune ``config.base`` on ``config.chat``, save the adapter in ``config.out``, score teacher vs base."""
    from .data import load_dataset
    from .finetune import ProbeConfig, Prober
    from .models import LoadOptions, resolve_base
    from .scoring import plan_battery, score_battery
    from .traits import resolve_batteries

    out = Path(config.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: exists and is not an empty folder; choose a new --out")
    rows = load_dataset(config.chat).examples
    batteries = resolve_batteries(config.traits)
    options = LoadOptions(config.device, config.precision, config.trust_remote_code, config.allow_pickle)
    loaded = options.load(resolve_base(config.base))
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
            "scores": [asdict(s) | {"change": round(s.change, 4)} for s in scores],
        },
    )
    return result
