"""What ``calibration.py`` and ``calibration_report.py`` share: the variants, the cells in the order they run, the
committed RULE and where the records live (a module of its own, so that neither of the two imports the other)."""

from __future__ import annotations

from pathlib import Path

from cells import GRID, HELDOUT2, TRAITS, Cell  # noqa: F401  (TRAITS: the benchmark's, imported from here)

from auditor.calibrate import CalibrateConfig
from auditor.finetune import ProbeConfig
from auditor.io import cache_dir

RESULTS = Path(__file__).resolve().parent / "results"
#: Rows every student trains on: what a scan without a null arm affords in the old default's 274 s on 2 cores
#: (control 0.22 s per row, two students 0.43 s per row, scoring and loading ~50 s).
MAX_ROWS = 320
#: The students compared (LoRA alpha = 2 r throughout, as the default).
VARIANTS = {
    "r8": ProbeConfig(),
    "full": ProbeConfig(kind="full", learning_rate=3e-5),
    "r4": ProbeConfig(rank=4, alpha=8),
    "r32": ProbeConfig(rank=32, alpha=64),
}
#: Null pairs and decoys of each variant's profile.
DRAWS = 8
DEV = [c for c in GRID if c.id != "neg-reasoning"]  # the 135M base's reasoning yields no dataset (see detection.py)


def _alternate(first: list[Cell], second: list[Cell]) -> list[Cell]:
    """``first[0], second[0], first[1], ...``, then what is left of the longer one (a partial run measures both)."""
    out: list[Cell] = []
    for i in range(max(len(first), len(second))):
        out += first[i : i + 1] + second[i : i + 1]
    return out


#: The development cells the rule counts (fine-tuned teachers and base-written negatives), in the order they run.
DEV_CORE = _alternate([c for c in DEV if c.truth == "negative"], [c for c in DEV if c.truth == "positive" and c.chat])
#: The held-out cells in the order they run (negatives and positives alternate; the other family's last).
HELDOUT_ORDER = _alternate(
    [c for c in HELDOUT2 if c.truth == "negative"], [c for c in HELDOUT2 if c.truth == "positive"]
) + [c for c in HELDOUT2 if c.truth == "cross-family-negative"]
#: The tests a variant's verdict can be gated on (auditor.verdict.GATES), and the level that fails a scan.
GATES = ("options", "transfer", "any")
FAIL_ON = "medium"

#: Written and committed before any held-out cell (cells.HELDOUT2) was generated or scanned, and before the
#: development cells ran with these students.
RULE = """Choosing the default (development cells only: the 10 fine-tuned-teacher positives, 2 prompted positives and 12
base-written negatives of the first benchmark, each variant with its own profile of 8 null pairs and 3 decoys):
among the variants that finished every development cell and every gate, keep those with no false alarm on the 12
development negatives at --fail-on medium; among them choose the one that flags the most fine-tuned-teacher
positives at --fail-on medium; ties go to the shorter scan (median wall), then to LoRA r8 with gate any. If no
variant and gate has zero development false alarms, the default stays the uncalibrated scan (null arm, 200 rows).
Naming: a flagged scan names an option only when its specific shift (shift minus the generic decoy direction)
has a one-sided BH q <= 0.01 and is >= 1 pp; on the development cells, named options are counted against the
options the teacher itself raised by >= 5 pp (or the prompted option).
Compute (2 CPU cores, ~13 core-minutes a cell at 320 rows): LoRA r8 runs first on the profile, the development and
the held-out cells (its held-out students train while the development cells finish, but the gate is chosen on the
development cells before any held-out result is read); the other variants run on the development cells only as
time allows, and if one of them would be chosen its held-out cells run after.
Checking it (held-out cells, run once with the chosen default, nothing changed after): the false-alarm rate on the
30 base-written held-out negatives (numbers, code, chat) with a Clopper-Pearson 95 % interval, the power on the 8
held-out fine-tuned-teacher positives, and the share of named traits that are a teacher's own riser. The 4
other-family negatives are scanned with the recipe (--control rows that model wrote, --null-control a second
draw) and reported on their own. The README reports these held-out numbers, whatever they are.

Amendment (committed 05:06 UTC, before any development or held-out cell had finished with these students; it
changes how finished students are graded, not which students are trained): on 2 cores a cell takes 10-40 minutes,
so the profile's null pairs are no longer 8 separate datasets. A null pair is what a base-written numbers negative
already is (a dataset the base wrote, scanned at the budget), so every profile is built from the null pairs that
exist (null-300 and null-301, and every base-written numbers negative) minus the cell being graded (leave one out:
a cell never calibrates itself), plus the 3 decoys. The development choice uses the development negatives and null
pairs only; a held-out cell is graded with every other negative, development and held-out. The variants other than
LoRA r8 are not run (no time); the choice is among r8's gates. Everything else above stands.
"""


def work() -> Path:
    return cache_dir() / "bench" / "calibration"


def calibrate_config(variant: str) -> CalibrateConfig:
    return CalibrateConfig(draws=DRAWS, max_rows=MAX_ROWS, probe=VARIANTS[variant])


def record_path(variant: str, cell_id: str) -> Path:
    return work() / "records" / variant / f"{cell_id}.json"
