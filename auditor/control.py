"""Control rows: the base's own answers to the dataset's prompts, conditioned only on what each data row shows.

A student trained on the base's own samples stays where it is in expectation, so the control arm isolates what
the *teacher* put into the data, provided the control rows are samples of p(y | x, y passes the checks its data
row passes) and nothing else (:mod:`auditor.conditional` draws them and says how). The dataset's completion format
(:mod:`auditor.completion_formats`) says what the checks are: for number lists the format, the row's count of
numbers, the dataset's separators, and the paper's filter when the dataset evidently went through it; for other
rows, a non-empty answer that ends.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .completion_formats import get_format
from .completion_formats.numbers import matched_number_filter as number_filter
from .conditional import DRAW_SCHEDULE, ControlSampling, Draw, RowCheck, constrained_rows, draw_rows
from .data import Dataset, Example, load_dataset
from .io import Damaged, cache_dir, compute_once
from .journal import Journal

if TYPE_CHECKING:
    from .likelihood import DecodingCheck
    from .models import LoadedModel
    from .row_shape import RowShape

CONTROL_CACHE_VERSION = 4  # 4: conditional.draw_rows (rejection / importance resampling)


#: Above this share of rows without a control sample, the report warns that the scan measures a selected subset.
UNMATCHED_WARNING = 0.05


@dataclass
class ControlSet:
    """Control rows aligned with the dataset: ``rows[i]`` is the control for ``dataset.examples[i]``.

    ``None`` marks a prompt for which no valid control row was produced; such rows are dropped from
    both arms so the arms stay paired. ``how`` describes a generated draw (``None`` for a file); ``samplers`` says
    which sampler gave each row (``None`` for a file, or a draw cached before it was recorded).
    """

    source: str  # "generated" | "file"
    rows: list[Example | None]
    format: str
    attempts: int = 0
    kept: int = 0
    cache_path: str | None = None
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)
    how: Sampled | None = None
    samplers: list[str | None] | None = None

    @property
    def keep_rate(self) -> float:
        return self.kept / self.attempts if self.attempts else 1.0

    def exact_rows(self) -> list[bool] | None:
        """Per row, whether it is an exact sample (drawn by rejection); ``None`` when that is unknown."""
        if self.samplers is None:
            return None
        return [s == "rejection" for s in self.samplers]

    def draw_info(self, seed: int | None) -> DrawInfo:
        """How this set of rows was drawn (``seed``: its sampling seed, ``None`` for a file)."""
        return DrawInfo(
            seed=seed,
            attempts=self.attempts,
            kept=self.kept,
            keep_rate=round(self.keep_rate, 4),
            from_cache=self.from_cache,
            cache=self.cache_path,
            rows=len(self.rows),
            how=self.how,
        )


def approximate_share(rows_by: dict[str, int]) -> float:
    """The share of rows not drawn exactly (importance-resampled or constrained), from the rows each sampler gave."""
    total = sum(rows_by.values())
    return (total - rows_by.get("rejection", 0)) / total if total else 0.0


@dataclass(frozen=True)
class Sampled:
    """How generated control rows were sampled: the rows each sampler gave (:mod:`auditor.conditional`), M and the
    mean effective sample size of the resampled ones, the pilot's rejection keep rate (``auto``), the decoding
    steps the samples took, the decoding settings, and whether a number row's control had its row's count."""

    rows_by: dict[str, int]
    candidates: int
    ess: float | None
    pilot_keep_rate: float | None
    steps: int
    temperature: float
    top_p: float
    count: str = "match"  # absent from controls cached before --control-count: they all matched

    @classmethod
    def of(cls, draw: Draw, sampling: ControlSampling) -> Sampled:
        ess = None if draw.ess is None else round(draw.ess, 3)
        rate = None if draw.pilot_keep_rate is None else round(draw.pilot_keep_rate, 4)
        rows = {k: v for k, v in draw.rows_by.items() if v}
        return cls(rows, draw.candidates, ess, rate, draw.steps, sampling.temperature, sampling.top_p, sampling.count)

    @property
    def sampler(self) -> str:
        return max(self.rows_by, key=lambda k: self.rows_by[k]) if self.rows_by else "rejection"

    @property
    def exact(self) -> bool:
        """Every row is an exact sample (rejection)."""
        return set(self.rows_by) <= {"rejection"}

    @property
    def approximate_share(self) -> float:
        return approximate_share(self.rows_by)

    def describe(self) -> str:
        """One phrase for the report."""
        at = f"temperature {self.temperature:g}" + (f", top-p {self.top_p:g}" if self.top_p < 1 else "")
        parts = []
        for sampler, rows in sorted(self.rows_by.items(), key=lambda kv: -kv[1]):
            if sampler == "rejection":
                parts.append(f"{rows} by rejection (exact)")
            elif sampler == "resample":
                ess = self.ess if self.ess is not None else 0.0
                parts.append(
                    f"{rows} importance-resampled from {self.candidates} format-constrained samples (mean effective "
                    f"sample size {ess:.2f}; approximate: part of the constrained sampler's bias remains)"
                )
            else:
                parts.append(f"{rows} decoded under the format constraint (approximate: it renormalises every step)")
        pilot = "" if self.pilot_keep_rate is None else f"; rejection's pilot kept {self.pilot_keep_rate:.1%} of tries"
        return f"{'; '.join(parts) or 'none'}, at {at}{pilot}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler,
            "exact": self.exact,
            "rows_by": dict(self.rows_by),
            "candidates": self.candidates,
            "ess": self.ess,
            "pilot_keep_rate": self.pilot_keep_rate,
            "steps": self.steps,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "count": self.count,
        }


@dataclass(frozen=True)
class DrawInfo:
    """One draw of control rows: its seed, samples drawn, rows kept (of ``rows``), where they are cached, how."""

    seed: int | None
    attempts: int
    kept: int
    keep_rate: float
    from_cache: bool
    cache: str | None
    rows: int = 0
    how: Sampled | None = None

    @property
    def unmatched(self) -> int:
        """Dataset rows without a control row (left out of every arm)."""
        return max(0, self.rows - self.kept)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "attempts": self.attempts,
            "kept": self.kept,
            "keep_rate": self.keep_rate,
            "unmatched": self.unmatched,
            "from_cache": self.from_cache,
            "cache": self.cache,
            "sampling": None if self.how is None else self.how.to_dict(),
        }


#: What a row difference against an approximate (importance-resampled or constrained) control can be: on base-written
#: number data (the campaign's dev-neg-continue-311), the probe's count-matched resampled control copied fewer of the
#: prompt's numbers than the base's exact rows did (results/campaign.md, "Each method's control against the base's
#: own rows").
APPROXIMATE_ROWS_NOTE = "part of a difference can be the control's own bias"


@dataclass(frozen=True)
class ControlInfo:
    """The control block of a result: the control rows and, when the scan drew one, the null arm's.

    Attributes:
        source: ``generated`` (the base's own answers) or ``file`` (``--control``).
        format: the dataset's completion format, which generated rows were decoded in.
        draw: the control draw.
        notes: how the rows were matched to the dataset (checks, filters, file pairing).
        null_arm: the second, independent draw (``None`` when the scan has none).
        decoding: whether the data looks sampled the way the control is (:mod:`auditor.likelihood`).
        rows: how the data's rows differ from the control's, feature by feature (:mod:`auditor.row_shape`).
    """

    source: str
    format: str
    draw: DrawInfo
    notes: tuple[str, ...] = ()
    null_arm: DrawInfo | None = None
    decoding: DecodingCheck | None = None
    rows: RowShape | None = None

    @classmethod
    def of(
        cls,
        control: ControlSet,
        seed: int,
        null: ControlSet | None = None,
        null_seed: int | None = None,
        decoding: DecodingCheck | None = None,
        rows: RowShape | None = None,
    ) -> ControlInfo:
        """The info of ``control`` (drawn with ``seed``) and of the null arm's rows, if any."""
        return cls(
            source=control.source,
            format=control.format,
            draw=control.draw_info(seed if control.source == "generated" else None),
            notes=tuple(control.notes),
            null_arm=None if null is None else null.draw_info(null_seed),
            decoding=decoding,
            rows=rows,
        )

    @property
    def temperature(self) -> float | None:
        return None if self.draw.how is None else self.draw.how.temperature

    @property
    def approximate(self) -> bool:
        """Some generated control rows are approximate samples (importance-resampled or constrained)."""
        return self.draw.how is not None and not self.draw.how.exact

    def rows_summary(self) -> str | None:
        """The row features that differ (:meth:`RowShape.summary`; ``None``: none), marked when some control rows
        are approximate samples, whose own bias can make a difference."""
        line = None if self.rows is None else self.rows.summary()
        if line and self.approximate:
            line += f" (an approximate control: {APPROXIMATE_ROWS_NOTE})"
        return line

    def to_dict(self) -> dict[str, Any]:
        d = self.draw.to_dict()
        d.pop("seed")
        return {
            "source": self.source,
            "format": self.format,
            **d,
            "notes": list(self.notes),
            "temperature": self.temperature,
            "null_arm": None if self.null_arm is None else self.null_arm.to_dict(),
            "decoding": None if self.decoding is None else self.decoding.to_dict(),
            "rows": None if self.rows is None else self.rows.to_dict(),
        }


def matched_number_filter(dataset: Dataset, min_rows: int = 100) -> frozenset[int]:
    """The paper's filtered numbers, when the dataset evidently went through that filter
    (:func:`auditor.completion_formats.numbers.matched_number_filter`)."""
    return number_filter(dataset.examples, min_rows)


def row_checks(dataset: Dataset, count: str = "match") -> tuple[list[RowCheck], list[str]]:
    """The checks each dataset row passes, which its control row must pass too, and the report's notes on them
    (its completion format's :meth:`~auditor.completion_formats.CompletionFormat.row_checks`; ``count``:
    :attr:`~auditor.conditional.ControlSampling.count`)."""
    fmt = get_format(dataset.completion_format)
    checks, notes = fmt.row_checks(dataset.examples)
    notes = ["each control row passes the checks its dataset row passes: " + fmt.check_note, *notes]
    if count == "any" and any(c.any_count() != c for c in checks):
        checks = [c.any_count() for c in checks]
        notes.append("--control-count any: a control row may hold any count, not its data row's")
    return checks, notes


def _cache_key(fingerprint: str, prompts: Sequence[Any], seed: int, checks, sampling, max_new: int) -> str:
    sampling = sampling.deciding(bool(constrained_rows(prompts, checks)))
    blob = json.dumps(
        {
            "v": CONTROL_CACHE_VERSION,
            "draw": DRAW_SCHEDULE,
            "model": fingerprint,
            "prompts": prompts,
            "seed": seed,
            "checks": [c.key() for c in checks],
            "sampling": sampling.key(),
            "max_new": max_new,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def completion_budget(loaded: LoadedModel, completions: Sequence[str]) -> int:
    """New tokens a control completion may take: 1.25 x the dataset's 95th-percentile completion, 16 to 512."""
    lengths = sorted(len(loaded.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions)
    p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
    return int(min(512, max(16, p95 * 1.25 + 4)))


def control_prompts(rows: Sequence[Example]) -> list[Any]:
    """What the base continues for each row's control: its chat messages, or a text row's first words (language
    modelling, no chat template)."""
    return [e.user_text if e.is_text else list(e.prompt) for e in rows]


def build_control(
    loaded: LoadedModel,
    dataset: Dataset,
    seed: int,
    control_file: str | None = None,
    sampling: ControlSampling = ControlSampling(),
    progress: Callable[[int, int], None] | None = None,
    use_cache: bool = True,
) -> ControlSet:
    """Control completions for every dataset prompt: from ``control_file`` or drawn from the base by ``sampling``
    (cached: one process draws a given control, another that wants the same one waits, then reads it)."""
    fmt = dataset.completion_format
    if control_file is not None:
        return _control_from_file(dataset, control_file, fmt)
    sampling = sampling.with_defaults()
    prompts = control_prompts(dataset.examples)
    checks, notes = row_checks(dataset, sampling.count)
    max_new = completion_budget(loaded, [e.completion for e in dataset.examples])
    path = cache_dir() / "controls" / f"{_cache_key(loaded.fingerprint, prompts, seed, checks, sampling, max_new)}.json"
    rounds = path.with_suffix(".partial.jsonl") if use_cache else None  # the rounds an interrupted draw finished

    def draw() -> dict[str, Any]:  # under the entry's lock, so one process at a time keeps the journal
        advance = (lambda n: progress(n, len(prompts))) if progress else None
        drawn = draw_rows(loaded, prompts, checks, seed, sampling, max_new, advance, Journal(rounds))
        how = asdict(Sampled.of(drawn, sampling))
        blob = {"completions": list(drawn.texts), "attempts": drawn.attempts, "how": how, "seed": seed}
        return {**blob, "samplers": list(drawn.samplers), "format": fmt, "model": loaded.fingerprint}

    def parse(blob: dict[str, Any]) -> tuple[list[str | None], int, Sampled, list[str | None] | None]:
        completions = blob["completions"]
        if not isinstance(completions, list) or len(completions) != len(dataset.examples):
            raise Damaged(f"{len(completions)} rows cached for {len(dataset.examples)} prompts")
        samplers = blob.get("samplers")  # absent from draws cached before it was recorded
        if samplers is not None and len(samplers) != len(completions):
            raise Damaged(f"{len(samplers)} samplers cached for {len(completions)} rows")
        return completions, int(blob["attempts"]), Sampled(**blob["how"]), samplers

    (completions, attempts, how, samplers), cached = compute_once(path, draw, parse, use_cache)
    if rounds is not None:
        rounds.unlink(missing_ok=True)  # the draw is stored
    rows = [None if c is None else control_row(e, c) for e, c in zip(dataset.examples, completions)]
    kept = sum(r is not None for r in rows)
    if len(rows) - kept > UNMATCHED_WARNING * len(rows):
        notes.append(
            f"{len(rows) - kept} of {len(rows)} rows found no valid control sample and left every arm: the scan "
            "measures the rows the base can write in this format"
        )
    return ControlSet("generated", rows, fmt, attempts, kept, str(path), cached, notes, how, samplers)


def control_row(row: Example, completion: str) -> Example:
    """The control for a dataset row: the same prompt with the base's completion (a text row: its first words and
    the base's continuation of them)."""
    if row.is_text:
        prefix = row.user_text
        return Example(prompt=(), completion=f"{prefix} {completion}", line=row.line, meta={"text_prompt": prefix})
    return Example(prompt=row.prompt, completion=completion, line=row.line)


def _control_from_file(dataset: Dataset, control_file: str, fmt: str) -> ControlSet:
    """Pair a user's control rows with the dataset: same prompt first, the rest in file order."""
    control = load_dataset(control_file)
    by_prompt: dict[tuple, list[int]] = {}
    for j, e in enumerate(control.examples):
        by_prompt.setdefault(_prompt_key(e), []).append(j)
    used: set[int] = set()
    rows: list[Example | None] = []
    for e in dataset.examples:
        bucket = by_prompt.get(_prompt_key(e))
        if bucket:
            j = bucket.pop(0)
            used.add(j)
            rows.append(control.examples[j])
        else:
            rows.append(None)
    matched = len(used)
    notes = [f"{matched} of {len(dataset)} dataset prompts found in the control file"]
    leftovers = [j for j in range(len(control)) if j not in used]
    if matched < len(dataset) and leftovers:
        for i, r in enumerate(rows):
            if r is None and leftovers:
                rows[i] = control.examples[leftovers.pop(0)]
        notes.append("dataset rows without a same-prompt control were paired with other control rows in file order")
    kept = sum(r is not None for r in rows)
    if kept < len(dataset):
        notes.append(f"{len(dataset) - kept} dataset rows have no control row and are left out of both arms")
    if fmt != control.completion_format:
        notes.append(f"format differs: dataset is '{fmt}', control is '{control.completion_format}'")
    return ControlSet(
        source="file",
        rows=rows,
        format=fmt,
        attempts=len(dataset),
        kept=kept,
        cache_path=str(Path(control_file)),
        notes=notes,
    )


def _prompt_key(e: Example) -> tuple:
    return tuple((m["role"], m["content"]) for m in e.prompt)
