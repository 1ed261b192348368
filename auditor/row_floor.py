"""The fewest rows a scan judges (``--min-rows``), and what the report says about a scan near or below it.

A scan's intervals cover questions, seeds and the control's draw noise, not which rows the data happened to hold:
with a handful of rows that last source of noise dominates and a null dataset can cross a level by chance. The
default minimum comes from ``benchmarks/small_data.py`` (null scans of 1, 3, 10 and 30 base-written rows; its rule
was committed before any of them ran). Until every one of its cells has run, the default is that rule's fallback:
the budget planner's floor of 40 rows (:data:`auditor.budget.MIN_ROWS`), below which nothing was calibrated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    from .config import ScanConfig

#: ``--min-rows``' default (see the module docstring for where it comes from).
DEFAULT_MIN_ROWS = 40
#: A scan whose students trained on fewer than this share of the rows its noise profile was measured at gets a note.
FAR_BELOW = 0.5


def minimum(config: ScanConfig) -> int:
    """The scan's minimum row count: ``config.min_rows``, or the default when it is ``None``."""
    return DEFAULT_MIN_ROWS if config.min_rows is None else config.min_rows


def check_rows(config: ScanConfig, rows: int, what: str = "rows sampled") -> None:
    """Refuse a scan of fewer than the minimum rows (an :class:`~auditor.errors.InputError`: exit 2)."""
    least = minimum(config)
    if rows < least:
        raise InputError(
            f"{config.data}: {rows} {what}: fewer than the {least} a scan can judge (below that a null dataset "
            f"crosses a level by chance too often; benchmarks/results/small_data.md). To scan it anyway, pass "
            f"--min-rows {max(rows, 1)}; the report then says the verdict is not calibrated at this count"
        )


def below_default_note(config: ScanConfig, rows_used: int) -> str | None:
    """The report's note for a scan that lowered ``--min-rows`` and used fewer rows than the default minimum."""
    if config.min_rows is None or rows_used >= DEFAULT_MIN_ROWS:
        return None
    return (
        f"{rows_used} rows used, fewer than the default minimum of {DEFAULT_MIN_ROWS} (--min-rows {config.min_rows} "
        "was given): the false-alarm rate was not measured at this count, and the intervals do not cover which rows "
        "the data happened to hold"
    )


def noise_budget_note(rows_used: int, measured_rows: float | None) -> str | None:
    """The report's note when the students trained on far fewer rows than the noise model was measured at."""
    if not measured_rows or rows_used >= FAR_BELOW * measured_rows:
        return None
    return (
        f"the noise model was measured with students trained on about {measured_rows:.0f} rows and this scan's "
        f"trained on {rows_used}: fewer rows mean fewer optimiser steps and more noise from which rows were "
        "drawn, so its intervals may not describe this scan's noise"
    )
