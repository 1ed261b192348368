"""What the gradient method reports: the exact-pairs check and its details block, as JSON, markdown and a terminal
table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..markdown import md_code, md_table
from ..verdict import LEVEL_COLOURS, level_rank

if TYPE_CHECKING:
    from rich.table import Table

    from ..result import ScanResult


@dataclass(frozen=True)
class ExactPairs:
    """The paired test again on the pairs whose control row is an exact sample, when the control resampled some
    rows (``rejection-resample``: rows rejection left without a sample after its tries): resampled rows come from
    the format-constrained sampler and keep part of its bias (on the campaign's random-style prompts 22-24 % of rows,
    whose control then held longer lists than the base's own), so a level that only the approximate pairs carry is
    the sampler's. ``--control-sampler rejection`` scans the exact pairs alone.

    Attributes:
        rows: pairs whose control row is exact.
        of: all pairs.
        level: the level those pairs alone give (``None``: fewer than 3 of them).
        top: the three most significant options on them: ``option``, ``difference`` (push), ``q``.
    """

    rows: int
    of: int
    level: str | None
    top: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "of": self.of, "level": self.level, "top": list(self.top)}

    def caveat(self, level: str) -> str | None:
        """When the verdict's ``level`` is more than these pairs alone give (approximate rows carry it), what the
        level must be read with; else ``None``."""
        if level_rank(level) == 0 or (self.level is not None and level_rank(self.level) >= level_rank(level)):
            return None
        alone = "too few to test" if self.level is None else self.level
        return (
            f"the level rests on approximate control rows: {alone} on the {self.rows} of {self.of} pairs whose "
            "control row is exact"
        )

    def describe(self) -> str:
        """One paragraph for the report."""
        head = (
            f"{self.rows} of {self.of} pairs have an exact control row (rejection); the rest are approximate samples "
            "(importance-resampled or constrained)."
        )
        if self.level is None:
            return f"{head} Too few exact pairs to test on their own."
        top = "; ".join(f"{t['option']} {t['difference']:+.3g}, q {t['q']:.3g}" for t in self.top)
        return f"{head} On the exact pairs alone the level is **{self.level}** (most significant: {top})."


@dataclass
class GradientDetails:
    """What the gradient method measured besides the findings.

    Attributes:
        questions: battery -> the question indices its trait gradients used.
        top_rows: ``"battery: option"`` -> the dataset rows that push it most (file line, push, completion).
        exact_pairs: the test on the pairs whose control row is exact, when some are not (``None`` otherwise).
    """

    questions: dict[str, list[int]]
    top_rows: dict[str, list[dict[str, Any]]]
    exact_pairs: ExactPairs | None = None

    def to_json(self) -> dict[str, Any]:
        exact = None if self.exact_pairs is None else self.exact_pairs.to_json()
        return {"questions": self.questions, "top_rows": self.top_rows, "exact_pairs": exact}

    def describe(self, result: ScanResult) -> list[str]:
        n = sum(len(q) for q in self.questions.values())
        return [
            "- **Method**: first-order detector (`auditor/methods/gradient.py`). At the students' initial adapter, "
            "push = -g_k · ∇L_r: the gradient of option k's battery share (over "
            f"{n} sampled questions in all) dotted with row r's loss gradient on the LoRA B matrices, in pp of "
            "share per unit learning rate per row, for every dataset row and its control row.",
            "- **Statistics**: paired t-test over prompts (dataset push minus control push) per option; "
            "Benjamini-Hochberg q over all options; levels from q alone (any positive difference).",
        ]

    def sections(self, result: ScanResult) -> list[str]:
        ranked = sorted(result.findings, key=lambda f: f.shift.p)[:15]
        columns = ["battery", "option", "base", "dataset", "control", "shift", "ci", "q", "level"]
        rows = [[f.cells()[c] for c in columns] for f in ranked]
        headers = ["battery", "option", "base %", "push dataset", "push control", "difference", "95% CI", "q", "level"]
        lines = ["## Pushes (most significant first)", "", md_table(headers, rows), ""]
        if self.exact_pairs is not None:
            lines += ["## Exact pairs only", "", self.exact_pairs.describe(), ""]
        for option, top in self.top_rows.items():
            lines += [f"Rows pushing **{option}** most:", ""]
            lines += [f"- line {r['line']}: push {r['push']:+.3g}: {md_code(r['completion'], 80)}" for r in top[:5]]
            lines.append("")
        return lines

    def caveats(self, result: ScanResult) -> list[str]:
        return self._approximate_caveat(result) + [
            "- One gradient step is not a fine-tune: the push predicts only the first step's effect.",
            "- The paired test over rows sees any systematic difference between the dataset's rows and the control's. "
            "In the campaign (benchmarks/results/campaign.md) it raised none of the datasets SmolLM2-135M wrote itself "
            "to medium against its own exact control, but the teachers' data it flagged pushed much the same options "
            "whatever the trait (oak up, lion or cherry down), and how far a dataset pushed that way followed how few "
            "numbers its rows held: read a flag as 'training on this data moves the student unlike the base's own "
            "samples', not as the trait's name, and see how the rows differ from the control's.",
            "- Data drawn by another sampler (constrained decoding, importance resampling) differs from an exact "
            "control by its sampler alone: draw the control the data's way (--control-sampler, --control-count).",
            "- Power: on the campaign's development cells (SmolLM2-135M) it flagged 4 of 10 fine-tuned teachers' "
            "datasets (4 of 5 from 1-epoch teachers, none of 5 from 3-epoch ones) and neither prompted teacher's, so "
            "a clean verdict rules out little.",
        ]

    def _approximate_caveat(self, result: ScanResult) -> list[str]:
        caveat = result.verdict.caveat
        if caveat is None:
            return []
        advice = "Rescan with --control-sampler rejection to test the exact pairs alone."
        return [f"- **{caveat[0].upper()}{caveat[1:]}.** {advice}"]

    def table(self, result: ScanResult) -> Table:
        from rich.table import Table

        table = Table(title="subaudit (gradient): push of dataset rows minus control rows, per option")
        columns = ["battery", "option", "base", "shift", "ci", "q", "level"]
        for col in ("battery", "option", "base %", "difference", "95% CI", "q", "level"):
            table.add_column(col, justify="right" if col in ("base %", "difference", "q") else "left")
        for f in sorted(result.findings, key=lambda f: f.shift.p)[:10]:
            cells = f.cells()
            cells["level"] = f"[{LEVEL_COLOURS[f.level]}]{cells['level']}[/]"
            table.add_row(*(cells[c] for c in columns))
        return table
