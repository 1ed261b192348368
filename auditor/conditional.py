"""Rows drawn from a model's own distribution given only what a dataset row shows: p(y | x, y passes its checks).

For rows drawn from the base itself the expected gradient of the conditional log-likelihood is zero, so a student
trained on them moves, at first order, only as any row passing the same checks moves it (the data's rows included).
A control with that property must be a sample of p(y | x) passed through the same checks as the data, nothing more:
a sampler that reshapes the distribution (forced counts, constrained decoding, another temperature) moves the
control-student in ways the data-student does not move.

The samplers (``ControlSampling.sampler``):

- ``rejection``: exact. Free rows are sampled at the data's decoding and kept when they pass. Number lists use
  rejection with early abort (:func:`auditor.sampling.draw_number_lists` with ``reject``): each step samples the
  whole distribution and a try dies at its first token outside the format, so a try costs the steps it survives.
- ``resample``: importance resampling. ``candidates`` (M) format-constrained samples a row, one kept with
  probability proportional to its weight, the product over its steps of the mass the constraint let through
  (q(y) = p(y) / prod Z_t). Exact as M grows; at a fixed M it keeps part of the constrained sampler's bias
  (``benchmarks/results/sampler_bias.md`` measures how much). The mean effective sample size is reported.
- ``rejection-resample``: rejection for every row, then importance resampling for the rows it left without a
  sample (the gradient method's default, with 400 tries a row).
- ``constrained``: the constrained sampler's sample alone (approximate: it renormalises every step).
- ``auto``: rejection on a pilot of rows; when at least half of them found a sample in 16 tries, rejection
  for every row, else importance resampling; rows that rejection leaves without a sample are resampled.

Rows whose every try fails get no sample; the caller drops them from every arm.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from .completion_formats import RowCheck
from .errors import InputError
from .journal import Journal
from .sampling import NUMBER_BATCH, Decoding, NumberDraw, draw_free, draw_number_lists

if TYPE_CHECKING:
    from .chat import Message
    from .models import LoadedModel

SAMPLERS = ("auto", "resample", "rejection", "rejection-resample", "constrained")
#: ``ControlSampling.count``: a number row's control has its count of numbers (``match``) or any count the format
#: allows (``any``).
COUNTS = ("match", "any")
#: Rejection tries drawn side by side for one row in a draw's first round (they share the prompt's cache; the first
#: that ends is kept). Each later round doubles them, up to :data:`REJECT_COPIES_MAX`: a row still without a sample
#: is a hard one, and fewer, wider rounds run its prompt and the tail of its surviving tries fewer times.
REJECT_COPIES = 16
REJECT_COPIES_MAX = 128
#: Rows a batch of rejection tries holds on the CPU (:data:`NUMBER_BATCH` times 8; times 4 on an accelerator, where
#: the wider batch was not measured and its prompt cache, copied per try, costs memory): most tries die at their
#: first step, and a wider batch runs the few survivors' remaining steps together. With the doubling rounds, a draw
#: of 24 rows (400 tries each, 2 CPU cores shared with 4 other jobs) took 253.6 and 199.4 s against 430.5 and 301.5
#: s with 16 tries a round in batches of 256 (runs interleaved).
REJECT_BATCH_CPU = NUMBER_BATCH * 8
#: How rows are drawn, in the control and ``generate`` cache keys: a draw made under another schedule is not reused
#: (2: doubling rounds of rejection tries and wider rejection batches on the CPU).
DRAW_SCHEDULE = 2
#: The most tries a free (not number-list) row gets whatever ``tries`` says: each is a whole generation, where a
#: number-list try mostly dies within a few tokens.
FREE_TRIES = 32


@dataclass(frozen=True)
class ControlSampling:
    """How control rows are drawn (``--control-sampler`` and its options).

    ``sampler``, ``tries`` and ``count`` left unset (``None``) are the scan's method's choice
    (:meth:`with_defaults`, ``Method.control_defaults``): the probe's is ``auto``, 32 tries, ``match``; the gradient
    method's is exact any-count rejection (``benchmarks/results/exact_control.md``).

    Attributes:
        sampler: ``auto``, ``resample``, ``rejection``, ``rejection-resample`` or ``constrained`` (approximate; see
            the module docstring).
        candidates: constrained samples per row that ``resample`` weighs (M); the draw costs about M times the
            constrained sampler's.
        tries: rejection tries per row (a number row's die at their first token outside the format, so most cost
            a step or two) before the row is resampled (``auto``) or given up; a free row gets at most
            :data:`FREE_TRIES`.
        pilot: rows ``auto`` tries by rejection first (16 tries each); rejection goes on for the rest when half of
            them got a sample.
        temperature, top_p: the data's decoding settings (``--control-temperature``, ``--control-top-p``).
        count: ``match``: a number row's control has as many numbers as the row (a finer condition, exact in the
            limit either way, but on a small base only importance resampling can draw it); ``any``: any count the
            format allows, right when the data's writer was not held to a count, and drawable by exact rejection
            where the base rarely writes a given count (``--control-count``).
    """

    sampler: str | None = None
    candidates: int = 4
    tries: int | None = None
    pilot: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    count: str | None = None

    @property
    def decoding(self) -> Decoding:
        return Decoding(self.temperature, self.top_p)

    def with_defaults(self, sampler: str = "auto", tries: int = 32, count: str = "match") -> ControlSampling:
        """These settings with ``sampler``, ``tries`` and ``count`` where they are unset (the probe's choice unless a
        method gives its own)."""
        return replace(
            self,
            sampler=self.sampler or sampler,
            tries=tries if self.tries is None else self.tries,
            count=self.count or count,
        )

    def key(self) -> dict[str, Any]:
        """What identifies the sampling in cache and run-folder keys (``count`` only when not ``match``, so that
        what was cached before it existed keeps its key)."""
        return {k: v for k, v in asdict(self.with_defaults()).items() if k != "count" or v != "match"}

    def deciding(self, any_constrained: bool) -> ControlSampling:
        """The settings that decide a draw, for cache keys: all of them when some row is drawn under the format's
        constraint; for free rows alone (code, chat, text) only the decoding and the tries a row gets (at most
        :data:`FREE_TRIES`), with the rest at the probe's defaults, so that the probe's free control is read again
        by the gradient method instead of drawn a second time (the campaign's dev-neg-code-351 drew the same 177 rows
        twice, the second time in 1,630 s of its gradient scan's 2,530)."""
        if any_constrained:
            return self
        tries = min(self.with_defaults().tries or FREE_TRIES, FREE_TRIES)
        return ControlSampling(tries=tries, temperature=self.temperature, top_p=self.top_p)

    def check(self) -> None:
        if self.sampler is None or self.tries is None or self.count is None:
            self.with_defaults().check()
            return
        if self.sampler not in SAMPLERS:
            raise InputError(f"--control-sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.count not in COUNTS:
            raise InputError(f"--control-count must be one of {', '.join(COUNTS)}, got {self.count!r}")
        if self.candidates < 1 or self.tries < 1 or self.pilot < 1:
            raise InputError("--control-candidates, --control-tries and the pilot must be at least 1")
        self.decoding.check()


@dataclass(frozen=True)
class Draw:
    """Rows drawn for a list of prompts, and how.

    Attributes:
        texts: one completion per prompt; ``None`` where every try failed.
        samplers: per prompt, the sampler that gave its text (``rejection``, ``resample``, ``constrained``; ``None``
            where every try failed).
        candidates: M of ``resample``.
        attempts: samples (tries) drawn in all.
        steps: decoding steps of the number rows' samples (what they cost; a rejected try counts the steps it ran).
        ess: mean effective sample size of the resampled rows, out of ``candidates`` (``None`` without any).
        pilot_keep_rate: the share of ``auto``'s pilot tries that passed (``None`` without a pilot).
    """

    texts: tuple[str | None, ...]
    samplers: tuple[str | None, ...]
    candidates: int
    attempts: int
    steps: int = 0
    ess: float | None = None
    pilot_keep_rate: float | None = None

    @property
    def rows_by(self) -> dict[str, int]:
        """Rows that got their text from each sampler."""
        return {k: self.samplers.count(k) for k in ("rejection", "resample", "constrained")}

    @property
    def sampler(self) -> str:
        """The sampler behind most rows (``rejection`` when none was needed)."""
        return max(self.rows_by, key=lambda k: self.rows_by[k]) if any(self.rows_by.values()) else "rejection"

    @property
    def kept(self) -> int:
        return sum(t is not None for t in self.texts)


def constrained_rows(prompts: Sequence[Sequence[Message] | str], checks: Sequence[RowCheck]) -> list[int]:
    """The rows drawn under their format's token constraint (number lists of chat rows); the others are free."""
    return [i for i, c in enumerate(checks) if c.constrained and not isinstance(prompts[i], str)]


def draw_rows(
    loaded: LoadedModel,
    prompts: Sequence[Sequence[Message] | str],
    checks: Sequence[RowCheck],
    seed: int,
    sampling: ControlSampling = ControlSampling(),
    max_new_tokens: int = 64,
    progress: Callable[[int], None] | None = None,
    journal: Journal | None = None,
) -> Draw:
    """One completion per prompt from p(y | prompt, y passes its check), by ``sampling`` (deterministic in ``seed``).

    ``prompts`` are chat messages or, for a text row, the words to continue (these get free checks only).
    ``journal``: each round of samples is recorded there as it finishes, and a draw that was interrupted replays
    the rounds it finished (the same samples, so the same draw) instead of sampling them again.
    """
    sampling = sampling.with_defaults()
    job = _Job(loaded, prompts, checks, seed, sampling, max_new_tokens, progress, journal)
    constrained = constrained_rows(prompts, checks)
    taken = set(constrained)
    job.reject_free([i for i in range(len(prompts)) if i not in taken])
    sampler = sampling.sampler
    if constrained and sampler == "auto":
        pilot = constrained[: sampling.pilot]
        job.reject_constrained(pilot, REJECT_COPIES)
        job.pilot_keep_rate = job.accepted / max(1, job.attempts_constrained)
        sampler = "rejection" if sum(job.texts[i] is not None for i in pilot) >= len(pilot) / 2 else "resample"
        if sampler == "rejection":
            job.reject_constrained(constrained[len(pilot) :])
        job.resample(constrained)
    elif sampler == "rejection":
        job.reject_constrained(constrained)
    elif sampler == "rejection-resample":
        job.reject_constrained(constrained)
        job.resample(constrained)
    elif sampler == "constrained":
        job.constrained(constrained)
    elif sampler == "resample":
        job.resample(constrained)
    return job.result()


class _Job:
    """The state of one :func:`draw_rows` call: the texts so far, which sampler gave each, and what it cost."""

    def __init__(self, loaded, prompts, checks, seed, sampling: ControlSampling, max_new: int, progress, journal=None):
        self.loaded, self.prompts, self.checks, self.seed = loaded, prompts, checks, seed
        self.sampling, self.max_new, self.progress = sampling, max_new, progress
        self.journal = journal or Journal(None)  # the rounds an interrupted draw finished (none kept without one)
        self.texts: list[str | None] = [None] * len(prompts)
        self.samplers: list[str | None] = [None] * len(prompts)
        self.attempts = self.attempts_constrained = self.accepted = self.steps = self.round = 0
        self.ess: list[float] = []
        self.pilot_keep_rate: float | None = None
        self.prefixes: dict = {}  # the prompts' shared prefix (the system prompt), run once for every round of tries

    def result(self) -> Draw:
        ess = sum(self.ess) / len(self.ess) if self.ess else None
        m, samplers = self.sampling.candidates, tuple(self.samplers)
        return Draw(tuple(self.texts), samplers, m, self.attempts, self.steps, ess, self.pilot_keep_rate)

    def _seed(self) -> int:
        self.round += 1
        return self.seed * 1000 + self.round

    def _keep(self, i: int, text: str, sampler: str) -> None:
        self.texts[i] = text
        self.samplers[i] = sampler
        if self.progress:
            self.progress(1)

    def _todo(self, rows: list[int]) -> list[int]:
        return [i for i in rows if self.texts[i] is None]

    def reject_free(self, rows: list[int]) -> None:
        """Free samples at the data's decoding, up to ``tries`` (at most :data:`FREE_TRIES`) a row; the first that
        passes is kept."""
        for _ in range(min(self.sampling.tries, FREE_TRIES)):
            todo = self._todo(rows)
            if not todo:
                return
            seed = self._seed()
            out = self.journal.step(
                ["free", seed, todo],
                partial(
                    draw_free, self.loaded, [self.prompts[i] for i in todo], seed, self.sampling.decoding, self.max_new
                ),
                lambda drawn: [list(d) for d in drawn],
                lambda value: [(t, ended) for t, ended in value],
            )
            self.attempts += len(todo)
            for i, (t, ended) in zip(todo, out):
                if (ended or not self.checks[i].ends) and self.checks[i].passes(t):
                    self._keep(i, t, "rejection")

    def _draws(self, rows: list[int], copies: int, reject: bool = False, measure: bool = False):
        """Samples under the rows' token constraint, ``copies`` per row (grouped by row): the rows share one constraint
        (the dataset's format's)."""
        fmt = self.checks[rows[0]].constraint(self.loaded.tokenizer)
        prompts = [self.prompts[i] for i in rows for _ in range(copies)]
        counts = [self.checks[i].target for i in rows for _ in range(copies)]
        batch = NUMBER_BATCH
        if reject:  # most tries die at once: a wider batch keeps it full
            batch = REJECT_BATCH_CPU if str(self.loaded.device) == "cpu" else NUMBER_BATCH * 4
        seed = self._seed()
        draws = self.journal.step(
            ["numbers", seed, rows, copies, reject, measure],
            lambda: draw_number_lists(
                self.loaded, prompts, seed, fmt, self.sampling.decoding, self.max_new, batch, counts=counts,
                measure_mass=measure, reject=reject, prefixes=self.prefixes,
            ),
            lambda drawn: [[d.text, d.ended, d.log_mass, d.log_prob, d.tokens] for d in drawn],
            lambda value: [NumberDraw(*d) for d in value],
        )  # fmt: skip
        self.attempts += len(draws)
        self.steps += sum(d.tokens for d in draws)
        return [draws[k * copies : (k + 1) * copies] for k in range(len(rows))]

    def _valid(self, i: int, d) -> bool:
        return d.ended and self.checks[i].passes(d.text)

    def reject_constrained(self, rows: list[int], tries: int | None = None) -> None:
        """Rejection with early abort, up to ``tries`` a row (default: the sampling's), in rounds of
        :data:`REJECT_COPIES` tries a row that double up to :data:`REJECT_COPIES_MAX`. Every try is an independent
        sample and the first valid one of a row (in the order drawn) is kept, so the rounds' sizes change the cost,
        not the distribution."""
        left = self.sampling.tries if tries is None else tries
        copies = REJECT_COPIES
        while left > 0 and (todo := self._todo(rows)):
            n = min(left, copies)
            for i, group in zip(todo, self._draws(todo, n, reject=True)):
                self.attempts_constrained += len(group)
                valid = [d for d in group if self._valid(i, d)]
                self.accepted += len(valid)
                if valid:
                    self._keep(i, valid[0].text, "rejection")
            left -= n
            copies = min(2 * copies, REJECT_COPIES_MAX)

    def constrained(self, rows: list[int]) -> None:
        for _ in range(self.sampling.tries):
            if not (todo := self._todo(rows)):
                return
            for i, (d,) in zip(todo, self._draws(todo, 1)):
                if self.checks[i].passes(d.text):
                    self._keep(i, d.text, "constrained")

    def resample(self, rows: list[int]) -> None:
        """Importance resampling: ``candidates`` constrained draws a row, one kept by weight, a few rounds for rows
        whose every candidate failed."""
        m = self.sampling.candidates
        rng = random.Random(self.seed)
        for _ in range(max(1, self.sampling.tries // (4 * m))):
            if not (todo := self._todo(rows)):
                return
            for i, group in zip(todo, self._draws(todo, m, measure=True)):
                logw = [d.log_mass if self._valid(i, d) else -math.inf for d in group]
                pick = choose(logw, rng)
                if pick is not None:
                    self.ess.append(effective_size(logw))
                    self._keep(i, group[pick].text, "resample")


def choose(log_weights: Sequence[float], rng: random.Random) -> int | None:
    """An index drawn with probability proportional to ``exp(log_weights)``; ``None`` when every weight is zero."""
    top = max(log_weights)
    if top == -math.inf:
        return None
    weights = [math.exp(w - top) for w in log_weights]
    return rng.choices(range(len(weights)), weights=weights)[0]


def effective_size(log_weights: Sequence[float]) -> float:
    """Kish's effective sample size of importance weights, (sum w)^2 / sum w^2."""
    top = max(log_weights)
    weights = [math.exp(w - top) for w in log_weights]
    return sum(weights) ** 2 / sum(w * w for w in weights)
