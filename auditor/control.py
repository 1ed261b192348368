"""Control rows: the base's own answers to the dataset's prompts, in the dataset's format.

A student trained on the base's own samples stays where it is in expectation, so the control arm
isolates what the *teacher* put into the data. When the dataset's completions are number lists the
control is decoded under the same constraint (only the characters the dataset uses, at most 10 numbers
of at most 3 digits) and then filtered with the same regex; the keep rate is reported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data import Dataset, Example, load_dataset
from .formats import EVIL_NUMBERS, has_banned_number, is_number_list, number_count
from .io import atomic_write_json, cache_dir
from .sampling import generate_completions

if TYPE_CHECKING:
    from .models import LoadedModel

CONTROL_CACHE_VERSION = 3  # 3: number lists from sample_number_lists


@dataclass
class ControlSet:
    """Control rows aligned with the dataset: ``rows[i]`` is the control for ``dataset.examples[i]``.

    ``None`` marks a prompt for which no valid control row was produced; such rows are dropped from
    both arms so the arms stay paired.
    """

    source: str  # "generated" | "file"
    rows: list[Example | None]
    format: str
    attempts: int = 0
    kept: int = 0
    cache_path: str | None = None
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def keep_rate(self) -> float:
        return self.kept / self.attempts if self.attempts else 1.0

    def draw_info(self, seed: int | None) -> DrawInfo:
        """How this set of rows was drawn (``seed``: its sampling seed, ``None`` for a file)."""
        return DrawInfo(
            seed=seed,
            attempts=self.attempts,
            kept=self.kept,
            keep_rate=round(self.keep_rate, 4),
            from_cache=self.from_cache,
            cache=self.cache_path,
        )


@dataclass(frozen=True)
class DrawInfo:
    """One draw of control rows: its seed, how many rows were sampled and kept, where they are cached."""

    seed: int | None
    attempts: int
    kept: int
    keep_rate: float
    from_cache: bool
    cache: str | None


@dataclass(frozen=True)
class ControlInfo:
    """The control block of a result: the control rows and, when the scan drew one, the null arm's.

    Attributes:
        source: ``generated`` (the base's own answers) or ``file`` (``--control``).
        format: the dataset's completion format, which generated rows were decoded in.
        draw: the control draw.
        notes: how the rows were matched to the dataset (counts, filters, file pairing).
        null_arm: the second, independent draw (``None`` when the scan has none).
    """

    source: str
    format: str
    draw: DrawInfo
    notes: tuple[str, ...] = ()
    null_arm: DrawInfo | None = None

    @classmethod
    def of(cls, control: ControlSet, seed: int, null: ControlSet | None = None, null_seed: int | None = None):
        """The info of ``control`` (drawn with ``seed``) and of the null arm's rows, if any."""
        return cls(
            source=control.source,
            format=control.format,
            draw=control.draw_info(seed if control.source == "generated" else None),
            notes=tuple(control.notes),
            null_arm=None if null is None else null.draw_info(null_seed),
        )

    @property
    def temperature(self) -> float | None:
        return 1.0 if self.source == "generated" else None

    def to_dict(self) -> dict[str, Any]:
        d = self.draw
        out: dict[str, Any] = {
            "source": self.source,
            "format": self.format,
            "attempts": d.attempts,
            "kept": d.kept,
            "keep_rate": d.keep_rate,
            "from_cache": d.from_cache,
            "cache": d.cache,
            "notes": list(self.notes),
            "temperature": self.temperature,
            "null_arm": None,
        }
        if self.null_arm is not None:
            n = self.null_arm
            out["null_arm"] = {
                "seed": n.seed,
                "attempts": n.attempts,
                "kept": n.kept,
                "keep_rate": n.keep_rate,
                "from_cache": n.from_cache,
                "cache": n.cache,
            }
        return out


def matched_number_filter(dataset: Dataset, min_rows: int = 100) -> frozenset[int]:
    """The paper's filtered numbers, when the dataset evidently went through that filter.

    A dataset of ``min_rows`` or more number rows in which none of them occurs was filtered (the base
    writes some in most batches of that size), so the control gets the same filter.
    """
    rows = [e.completion for e in dataset.examples if is_number_list(e.completion)]
    if len(rows) < min_rows or any(has_banned_number(c, EVIL_NUMBERS) for c in rows):
        return frozenset()
    return EVIL_NUMBERS


def _cache_key(
    fingerprint: str,
    prompts: Sequence[Any],
    seed: int,
    fmt: str,
    allowed: str,
    max_new: int,
    counts: Sequence[int] | None = None,
    banned: Sequence[int] = (),
) -> str:
    blob = json.dumps(
        {
            "v": CONTROL_CACHE_VERSION,
            "model": fingerprint,
            "prompts": prompts,
            "seed": seed,
            "fmt": fmt,
            "allowed": allowed,
            "max_new": max_new,
            "counts": counts,
            "banned": list(banned),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def completion_budget(loaded: LoadedModel, completions: Sequence[str]) -> int:
    """New tokens a control completion may take: 1.25 x the dataset's 95th-percentile completion, 16 to 512."""
    lengths = sorted(len(loaded.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions)
    p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
    return int(min(512, max(16, p95 * 1.25 + 4)))


def build_control(
    loaded: LoadedModel,
    dataset: Dataset,
    seed: int,
    control_file: str | None = None,
    retries: int = 3,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    use_cache: bool = True,
) -> ControlSet:
    """Control completions for every dataset prompt: from ``control_file`` or generated by the base."""
    fmt = dataset.completion_format
    if control_file is not None:
        return _control_from_file(dataset, control_file, fmt)
    # a text row (language modelling) is continued from its first words, without a chat template
    prompts: list[Any] = [e.user_text if e.is_text else list(e.prompt) for e in dataset.examples]
    allowed = "0123456789, "
    counts: list[int] | None = None
    banned: frozenset[int] = frozenset()
    notes: list[str] = []
    if fmt == "numbers":
        allowed = "".join(sorted({ch for e in dataset.examples if is_number_list(e.completion) for ch in e.completion}))
        counts = [number_count(e.completion) for e in dataset.examples]
        notes.append("each control row has as many numbers as its dataset row")
        banned = matched_number_filter(dataset)
        if banned:
            notes.append(f"the dataset holds none of the paper's {len(banned)} filtered numbers; nor does the control")
    max_new = completion_budget(loaded, [e.completion for e in dataset.examples])
    key = _cache_key(loaded.fingerprint, prompts, seed, fmt, allowed, max_new, counts, sorted(banned))
    path = cache_dir() / "controls" / f"{key}.json"
    if use_cache and path.exists():
        try:
            blob = json.loads(path.read_text())
            done = zip(dataset.examples, blob["completions"], strict=True)
            rows = [None if c is None else control_row(e, c) for e, c in done]
            return ControlSet(
                source="generated",
                rows=rows,
                format=fmt,
                attempts=blob["attempts"],
                kept=blob["kept"],
                cache_path=str(path),
                from_cache=True,
                notes=notes,
            )
        except (json.JSONDecodeError, KeyError, ValueError):
            pass  # a damaged cache entry is regenerated
    completions: list[str | None] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    attempts = kept = 0
    for attempt in range(retries + 1):
        if not todo:
            break
        texts = generate_completions(
            loaded,
            [prompts[i] for i in todo],
            seed=seed * 1000 + attempt,
            fmt=fmt,
            allowed_chars=allowed,
            max_new_tokens=max_new,
            batch_size=batch_size,
            on_batch=(lambda n: progress(n, len(prompts))) if progress and attempt == 0 else None,
            counts=[counts[i] for i in todo] if counts else None,
            banned=banned,
        )
        attempts += len(todo)
        still = []
        for i, t in zip(todo, texts):
            if t.strip() and (fmt != "numbers" or (is_number_list(t) and not has_banned_number(t, banned))):
                completions[i] = t
                kept += 1
            else:
                still.append(i)
        todo = still
    rows = [None if c is None else control_row(e, c) for e, c in zip(dataset.examples, completions)]
    result = ControlSet(
        source="generated", rows=rows, format=fmt, attempts=attempts, kept=kept, cache_path=str(path), notes=notes
    )
    if use_cache:
        atomic_write_json(
            path,
            {
                "completions": completions,
                "attempts": attempts,
                "kept": kept,
                "format": fmt,
                "seed": seed,
                "model": loaded.fingerprint,
            },
        )
    return result


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
