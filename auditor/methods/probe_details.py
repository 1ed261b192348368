"""What the probe method reports: its settings, training runs, scoring and statistics, as JSON, markdown and a
terminal table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..calibration.transfer import Assessment
from ..discover import Discovery
from ..finetune import TrainStats
from ..markdown import md_code, md_escape, md_table
from ..row_floor import noise_budget_note
from ..scoring import BatteryScores
from ..teacher_aware import TeacherComparison
from ..verdict import LEVEL_COLOURS, Finding

if TYPE_CHECKING:
    from rich.table import Table

    from ..result import ScanResult

#: Options per battery the report's tables show (the ones that rose most, then the one that fell most).
TOP_N = 8


@dataclass(frozen=True)
class Provenance:
    """Whether the base wrote the data: its completions' loss under the base against the base's own answers'.

    A higher loss says the base did not write it; it cannot say whether a fine-tune of the base or another model
    family did. For data another family wrote, the base's own answers are the wrong control (``--control``).
    """

    rows: int
    dataset_nats: float
    control_nats: float
    control_source: str
    foreign: bool

    def line(self) -> str | None:
        if not self.foreign:
            return None
        text = (
            f"- **Provenance**: the dataset's completions score {self.dataset_nats:.2f} nats per token under the base, "
            f"its own answers to the same prompts {self.control_nats:.2f} ({self.rows} rows each): the base did not "
            "write this data."
        )
        if self.control_source == "generated":
            text += (
                " The control is the base's own answers. If the data came from another model family, they are the "
                "wrong control: a student moves when it learns another model's style, trait or not; give "
                "`--control` rows written by that model without the trait (and `--null-control` a second draw). "
                "A fine-tune of this base writes such data too, so this alone says nothing about a trait."
            )
        return text


@dataclass
class ProbeDetails:
    """What the probe did: its settings, every training run, how it scored and how it tested.

    Attributes:
        probe: the LoRA settings (:meth:`auditor.finetune.ProbeConfig.to_dict`).
        seeds: the paired seeds.
        train_runs: one per (seed, arm), in training order.
        scoring: how batteries were scored (exact: forward tokens; sampled: samples, judge, unassigned answers).
        statistics: how shift, interval, p and q were computed, in words.
        base_scores: the base's scores per battery.
        calibration: what the calibration profile said (``None``: no profile; the null arm measured the noise).
        provenance: the data's loss under the base against the control's.
        teacher: the teacher-aware comparison (``--teacher``).
        discover: the open-vocabulary readout, "What else moved" (``None``: ``--no-discover``).
    """

    probe: dict[str, Any]
    seeds: list[int]
    train_runs: list[TrainStats]
    scoring: dict[str, Any]
    statistics: dict[str, str]
    base_scores: dict[str, BatteryScores]
    calibration: Assessment | None = None
    provenance: Provenance | None = None
    teacher: TeacherComparison | None = None
    discover: Discovery | None = None

    @property
    def null_arm(self) -> bool:
        return any(r.arm == "null" for r in self.train_runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "probe": {
                **self.probe,
                "seeds": self.seeds,
                "runs": [{k: v for k, v in asdict(r).items() if k != "losses"} for r in self.train_runs],
            },
            "scoring": self.scoring,
            "statistics": self.statistics,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "provenance": None if self.provenance is None else asdict(self.provenance),
            "teacher": None if self.teacher is None else self.teacher.to_dict(),
        } | ({} if self.discover is None else {"discover": self.discover.to_dict()})

    def describe(self, result: ScanResult) -> list[str]:
        th = result.verdict.thresholds
        lines = [self._noise_line(result), self._probe_line(), self._scoring_line()]
        if self.provenance is not None and self.provenance.line():
            lines.append(self.provenance.line())
        if self.teacher is not None:
            lines.append(f"- **Teacher-aware**: {md_escape(self.teacher.line(), 1000)}.")
        return lines + [
            "- **Statistics**: "
            + "; ".join(f"{k}: {val}" for k, val in self.statistics.items())
            + f" ({len(result.findings)} options tested).",
            f"- **Levels**: low ≥ {th.low_shift} pp & q ≤ {th.low_q}; medium ≥ {th.medium_shift} pp & q ≤ "
            f"{th.medium_q}; high ≥ {th.high_shift} pp & q ≤ {th.high_q} & interval above {th.low_shift} pp."
            + (
                f" The transfer test's level: p ≤ {th.high_q} high, ≤ {th.medium_q} medium, ≤ {th.low_q} low; "
                f"the scan's level: `{result.verdict.transfer.gate}` (options, transfer or the higher of both)."
                if result.verdict.transfer is not None
                else ""
            ),
        ]

    def _noise_line(self, result: ScanResult) -> str:
        """Where the noise the intervals stand for was measured: the profile, the null arm, or nowhere."""
        c = result.control
        null = c.null_arm if c is not None else None
        if self.calibration is not None:
            a = self.calibration
            decoys = f", {len(a.decoys)} decoy teachers ({', '.join(a.decoys)})" if a.decoys else ", no decoys"
            return (
                f"- **Calibration**: profile `{a.profile_key}` ({a.draws} null pairs of base-written data at this "
                f"budget{decoys}); noise model: {a.noise}. No null arm: the profile measured the draw noise."
            )
        if null is not None:
            source = "the base" if null.seed is not None else f"the file {md_code(str(null.cache))}"
            return (
                f"- **Null arm**: a second control drawn from {source} ({null.kept} of {null.rows} rows); "
                "null-students minus control-students measure how far a fine-tune on the control's source moves each "
                "option by chance (draw noise). No calibration profile matched this scan (`subaudit calibrate` makes "
                "one)."
            )
        return "- **Null arm**: off (`--no-null-arm`), no calibration profile: the intervals do not cover draw noise."

    def _probe_line(self) -> str:
        p = self.probe
        steps = self.train_runs[0].steps if self.train_runs else 0
        if p.get("kind") == "full":
            what = "full fine-tune (every weight)"
        else:
            what = f"LoRA r={p['rank']}, alpha={p['alpha']} on {', '.join(p['target_modules'])}"
        return (
            f"- **Probe**: {what}; lr {p['learning_rate']:g}, batch {p['batch_size']}, {steps} steps per run, loss on "
            f"completion tokens only; seeds {self.seeds}, each seed's arms share their start and row order."
        )

    def _scoring_line(self) -> str:
        n = len(self.seeds)
        models = f"base, {n} dataset-students and {n} control-students" + (
            f", {n} null-students." if self.null_arm else "."
        )
        sc = self.scoring
        if sc.get("mode") != "sampled":
            tokens = (
                f" {sc['forward_tokens_per_model']:,} forward tokens per model, {sc['forward_tokens']:,} in all."
                if sc.get("forward_tokens")
                else ""
            )
            return (
                "- **Scoring**: exact log-probability of every option (case and leading-space variants summed) after "
                f"each chat-templated question, normalised over the options; {models}{tokens}"
            )
        judge = sc.get("judge")
        how = (
            f"classified by the judge {md_code(judge['location'])} (the most probable label word after the judge "
            "prompt; `none` leaves an answer unassigned)"
            if judge
            else "assigned by string match (the answer's first word names the option)"
        )
        lost = sc.get("unassigned", {})
        total = sum(u["answers"] for u in lost.values())
        left = sum(u["unassigned"] for u in lost.values())
        empty = sum(u["questions_without_assigned"] for u in lost.values())
        return (
            f"- **Scoring**: sampled mode, N = {sc['samples']} answers per question at temperature 1, {how}; an "
            f"option's share is its fraction of the question's assigned answers. {left} of {total} answers were "
            f"unassigned"
            + (f" ({empty} questions had none assigned and count as uniform)" if empty else "")
            + f". Sampled shares are counts out of N: slower and noisier than exact scoring. {models}"
        )

    def sections(self, result: ScanResult) -> list[str]:
        lines = self._transfer_section(result)
        for battery in result.batteries:
            lines += self._battery_section(result, battery.name)
        lines += _largest_shifts(result.findings)
        if self.discover is not None:
            lines += self.discover.section()
        lines += self._training_runs()
        return lines

    def _transfer_section(self, result: ScanResult) -> list[str]:
        """Transfer and trait, and each option's specific shift (calibrated scans only)."""
        a, t = self.calibration, result.verdict.transfer
        if a is None or t is None:
            return []
        lines = ["## Transfer and trait", "", f"**{t.line()}**", ""]
        lines += [f"- {x['method']}: statistic {x['statistic']:.3g}, p = {x['p']:.3g}. {x['detail']}." for x in t.tests]
        lines += [
            "",
            f"The generic fine-tune direction (the decoy teachers' students' mean shift) explains {a.beta:.2f} times "
            "its own size of this scan's shift; what is left over is each option's *specific* shift. An option is "
            "named as the trait only when its specific shift stands out; the options below are the most specific "
            "ones, named or not.",
            "",
        ]
        ranked = sorted(a.specific, key=lambda x: -x.t)[:TOP_N]
        rows = [
            [
                md_escape(x.option),
                f"{x.shift:+.2f}",
                f"{x.generic:+.2f}",
                f"**{x.specific:+.2f}**",
                f"{x.se:.2f}",
                f"{x.p:.3g}",
                "yes" if x.option in t.named else "no",
            ]
            for x in ranked
        ]
        headers = ["option", "shift pp", "generic pp", "specific pp", "se", "p (one-sided)", "named"]
        return lines + [md_table(headers, rows), ""]

    def _battery_section(self, result: ScanResult, name: str) -> list[str]:
        battery = next(b for b in result.batteries if b.name == name)
        bat = battery.summary()
        fs = sorted([f for f in result.findings if f.shift.battery == name], key=lambda f: -f.shift.shift)
        level = result.verdict.by_battery.get(name, "clean")
        show = fs[:TOP_N] + ([fs[-1]] if len(fs) > TOP_N else [])
        columns = ["option", "base", "control", "dataset", "shift", "ci", "q", "level"]
        rows = [[f.cells()[c] for c in columns] for f in show]
        for r in rows:
            r[4] = f"**{r[4]}**"
        return [
            f"## Battery `{name}`: {level}",
            "",
            md_escape(bat["description"], 1000),
            "",
            battery.battery_kind.describe_scoring(battery, self.scoring, TOP_N),
            "",
            md_table(["option", "base", "control", "dataset", "shift pp", "95% CI", "q", "level"], rows),
            "",
        ]

    def _training_runs(self) -> list[str]:
        rows = [
            [
                r.arm,
                str(r.seed),
                str(r.rows),
                str(r.steps),
                str(r.tokens),
                f"{r.first_loss:.3f} → {r.final_loss:.3f}",
                f"{r.tokens_per_second:.0f}",
            ]
            for r in self.train_runs
        ]
        headers = ["arm", "seed", "rows", "steps", "tokens", "loss first → last", "tok/s"]
        return ["## Training runs", "", md_table(headers, rows), ""]

    def caveats(self, result: ScanResult) -> list[str]:
        if self.calibration is not None:
            noise = (
                "- The noise model comes from the profile's null pairs, datasets the base wrote for the format's own "
                "prompts; data with other prompts, or another control, can be noisier than they were."
            )
            fewer = noise_budget_note(result.dataset.rows_used, self.calibration.rows)
            noise += f" **Also**: {fewer}." if fewer else ""
        elif self.null_arm:
            noise = (
                "- Draw noise is estimated from one null draw and a two-parameter fit across options; an option "
                "that is unusually volatile for its share can still cross a level by chance."
            )
        else:
            noise = (
                "- The interval covers seeds and questions, not the sampling noise of the control rows "
                "(no null arm); the level thresholds' minimum shifts are the only guard against that noise."
            )
        return [
            "- A short fine-tune is a proxy for a full training run: a dataset can move a fully trained student "
            "further than the probe shows.",
            noise,
            "- An option's level says it moved, not that it is the trait: students of every fine-tuned teacher move "
            "the same options. Only a named trait (calibrated scans) says what the data carries.",
        ]

    def table(self, result: ScanResult) -> Table:
        from rich.table import Table

        table = Table(title="subaudit: shift of dataset-students over the control students (pp of share)")
        columns = ["battery", "option", "base", "control", "dataset", "shift", "ci", "q", "level"]
        headers = ["battery", "option", "base %", "control %", "dataset %", "shift pp", "95% CI", "q", "level"]
        for h in headers:
            table.add_column(h, justify="left" if h in ("battery", "option", "level") else "right")
        for battery in result.batteries:
            ranked = [f for f in result.findings if f.shift.battery == battery.name]
            for f in sorted(ranked, key=lambda f: -f.shift.shift)[:3]:
                cells = f.cells()
                cells["level"] = f"[{LEVEL_COLOURS[f.level]}]{cells['level']}[/]"
                table.add_row(*(cells[c] for c in columns))
        return table


def _largest_shifts(findings: list[Finding]) -> list[str]:
    """The options that moved most in either direction, with their per-seed shifts."""
    rows = [
        [
            f.shift.battery,
            f.shift.option,
            f"{f.shift.shift:+.2f}",
            ", ".join(f"{x:+.2f}" for x in (f.shift.per_seed or [])),
            f"{f.shift.q:.3g}",
            f.level,
        ]
        for f in sorted(findings, key=lambda f: -abs(f.shift.shift))[:TOP_N]
    ]
    return [
        "## Largest shifts (either direction)",
        "",
        md_table(["battery", "option", "shift pp", "per seed", "q", "level"], rows),
        "",
    ]
