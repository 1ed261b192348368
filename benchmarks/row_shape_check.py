"""The row-shape comparison (``auditor.row_shape``) on committed data: null pairs and a known difference.

    .venv/bin/python benchmarks/row_shape_check.py      # -> benchmarks/results/row_shape.md

- null pairs: ``exact_control``'s base-written exact number rows (``neg-exact-K``) against the base's second exact
  draw for the same prompts (``neg-exact-K-control``), K = 1..4: nothing should differ (3 features each, q <= 0.05);
- a known difference: the base's rows from the format-constrained sampler (``sampler_confound``'s
  ``neg-constrained-1``, 7.4 numbers a row) against the exact rows for the same prompts (``neg-exact-1`` and its
  control).

Rows are paired by prompt (each file answers every prompt at most once). Files only; no model runs.
"""

from __future__ import annotations

from pathlib import Path

from auditor.data import Example, load_dataset
from auditor.io import atomic_write_text
from auditor.row_shape import RowShape, compare_rows

RESULTS = Path(__file__).resolve().parent / "results"
EXACT = RESULTS / "exact_control" / "data"
PAIRS = [(EXACT / f"neg-exact-{k}.jsonl", EXACT / f"neg-exact-{k}-control.jsonl", "null pair") for k in (1, 2, 3, 4)]
PAIRS += [
    (RESULTS / "sampler_confound" / "neg-constrained-1.jsonl", EXACT / f"neg-exact-1{tail}.jsonl", "constrained")
    for tail in ("", "-control")
]


def paired(data: Path, control: Path) -> tuple[list[Example], list[Example]]:
    """The rows of ``data`` and ``control`` that answer the same prompt, in ``data``'s order."""
    by_prompt = {e.user_text: e for e in load_dataset(str(control)).examples}
    rows = [(e, by_prompt[e.user_text]) for e in load_dataset(str(data)).examples if e.user_text in by_prompt]
    return [d for d, _ in rows], [c for _, c in rows]


def shape(data: Path, control: Path) -> RowShape:
    return compare_rows("numbers", *paired(data, control))


def main() -> None:
    lines = [
        "# How the rows differ, on committed data (benchmarks/row_shape_check.py)",
        "",
        "`auditor.row_shape.compare_rows` (the report's \"How the rows differ from the control's\"): each feature's",
        "mean a row, data | control, and its Benjamini-Hochberg q over the 3 features (Wilcoxon signed-rank over the",
        "pairs). A null pair is the base's exact rows against its second exact draw for the same prompts.",
        "",
        "| data | control | kind | pairs | numbers a row | copied from the prompt | mean value | features differing |",
        "|---|---|---|---|---|---|---|---|",
    ]
    differing = {"null pair": 0, "constrained": 0}
    for data, control, kind in PAIRS:
        s = shape(data, control)
        by = {f.feature: f for f in s.features}
        cells = [f"{by[n].data:.3g} \\| {by[n].control:.3g} (q {by[n].q:.2g})" for n in
                 ("numbers a row", "copied from the prompt", "mean value")]  # fmt: skip
        differing[kind] += len(s.differing())
        lines.append(
            f"| {data.name} | {control.name} | {kind} | {by['numbers a row'].pairs} | {' | '.join(cells)} | "
            f"{', '.join(f.feature for f in s.differing()) or '-'} |"
        )
    n_null = 3 * sum(kind == "null pair" for *_, kind in PAIRS)
    lines += [
        "",
        f"Null pairs: {differing['null pair']} of {n_null} features differ at q <= 0.05; constrained against exact: "
        f"{differing['constrained']} of {3 * sum(kind == 'constrained' for *_, kind in PAIRS)}.",
        "",
    ]
    atomic_write_text(RESULTS / "row_shape.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
