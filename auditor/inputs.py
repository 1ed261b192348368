"""What every detection method is given: the prepared inputs of a scan (see :mod:`auditor.prepare`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import ScanConfig
from .control import ControlInfo, ControlSet
from .data import Dataset, Example
from .models import LoadedModel, ModelSpec
from .progress import Reporter
from .traits import Battery

if TYPE_CHECKING:
    from .budget_plan import BudgetPlan
    from .calibration.profile import NoiseProfile
    from .likelihood import DecodingCheck
    from .row_shape import RowShape

#: The null arm's control rows are sampled with ``seed + NULL_SEED_OFFSET``.
NULL_SEED_OFFSET = 1000


@dataclass
class PairedRows:
    """The dataset rows that have a control row (and a null-arm row when there is a null arm), aligned;
    ``exact``: per pair, whether its control row is an exact sample (``None`` when unknown)."""

    data: list[Example]
    control: list[Example]
    null: list[Example] | None = None
    exact: list[bool] | None = None

    def __len__(self) -> int:
        return len(self.data)

    def arms(self) -> dict[str, list[Example]]:
        """Rows per arm, in the order students are trained: dataset, control, then null."""
        out = {"dataset": self.data, "control": self.control}
        if self.null is not None:
            out["null"] = self.null
        return out


@dataclass
class Controls:
    """The control draws a method asked for: the control rows and, optionally, a second draw (the null arm)."""

    control: ControlSet
    null: ControlSet | None
    seed: int
    decoding: DecodingCheck | None = None
    rows: RowShape | None = None

    def pairs(self, dataset: Dataset) -> PairedRows:
        """The dataset rows every arm has a row for (a prompt without a usable control row is left out of all)."""
        null_rows = self.null.rows if self.null else [None] * len(dataset)
        exact = self.control.exact_rows()
        kept = [
            i
            for i, (c, n) in enumerate(zip(self.control.rows, null_rows))
            if c is not None and (self.null is None or n is not None)
        ]
        return PairedRows(
            data=[dataset.examples[i] for i in kept],
            control=[row for i in kept if (row := self.control.rows[i]) is not None],
            null=None if self.null is None else [row for i in kept if (row := null_rows[i]) is not None],
            exact=None if exact is None else [exact[i] for i in kept],
        )

    def info(self) -> ControlInfo:
        return ControlInfo.of(
            self.control, self.seed, self.null, self.seed + NULL_SEED_OFFSET, self.decoding, self.rows
        )


class Timings:
    """Seconds per stage, accumulated (a stage may run in several pieces), and the stage running now (so an
    unexpected error can say where it happened)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.running: list[str] = []

    @property
    def current(self) -> str | None:
        """The innermost stage running (or that an exception left)."""
        return self.running[-1] if self.running else None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self.running.append(name)
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)
        self.running.pop()  # only on success: after an exception the failing stage stays current

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in self.seconds.items()}


@dataclass(frozen=True)
class ScanInputs:
    """A scan's prepared inputs, handed to its method; never changed once built (``dataclasses.replace`` makes a
    new one, as ``--budget`` does). The run folder and the control draws are passed to ``Method.run`` beside them.

    Attributes:
        config: the scan's shared settings.
        settings: the method's own settings (its ``settings`` dataclass, from ``config.method_args``).
        dataset: the validated, sampled rows.
        batteries: the trait batteries to measure.
        spec, loaded: the base as resolved and as loaded (one model for the whole scan).
        judge: a second model the method scores with (the probe's ``--judge``; ``None`` otherwise).
        reporter: where progress goes.
        timings: seconds per stage (an accumulator the stages add to).
        profile: the calibration profile the method uses (``None``: none matched, or it uses none).
        budget: what ``--budget`` chose (``None`` without one).
    """

    config: ScanConfig
    settings: Any
    dataset: Dataset
    batteries: list[Battery]
    spec: ModelSpec
    loaded: LoadedModel
    judge: LoadedModel | None = None
    reporter: Reporter = field(default_factory=Reporter)
    timings: Timings = field(default_factory=Timings)
    profile: NoiseProfile | None = None
    budget: BudgetPlan | None = None
