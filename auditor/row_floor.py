"""The fewest rows a scan judges (``--min-rows``), and what the report says about a scan far below its noise profile.

A scan's intervals cover questions, seeds and the control's draw noise, not which rows the data happened to hold,
so with a handful of rows a null dataset might cross a level by chance. ``benchmarks/small_data.py`` measured it
(null scans of base-written rows with the defaults; its rule was committed before any of them ran): at 1, 3, 10 and
30 rows, 0, 1, 1 and 1 of 8 scans each were flagged at ``medium`` (0, 1, 1 and 2 at ``low``), within the rule's
bound at every count, so the rule's minimum, and the default, is 1 row: no count tested raised false alarms beyond
what the scan says. Eight scans a count can only see a gross excess (the intervals reach 0.37 to 0.53), and a scan of
a few rows has little power: its verdict's detectable shift says how little. ``--min-rows`` stays for pipelines
that want a floor of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    from .config import ScanConfig

#: ``--min-rows``' default: the pre-registered rule's minimum (see the module docstring).
DEFAULT_MIN_ROWS = 1
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
            f"{config.data}: {rows} {what}: fewer than the minimum of {least} (--min-rows). To scan it anyway, "
            f"pass --min-rows {max(rows, 1)}; the configuration table of the report records it"
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
