"""``--method probe`` (the default): fine-tune students on the data and on control rows, and measure them.

For every seed, a LoRA student is trained on the dataset rows, another on the control rows (the base's own
answers to the same prompts) and, with the null arm, a third on a second, independent draw of them; all
arms of a seed start from the same adapter and see rows in the same order. The base and every student
answer every battery (exact log-probabilities, or sampled answers), and :mod:`auditor.stats` turns the
students' shares into per-option shifts, intervals and q-values, graded by :mod:`auditor.verdict`.
Every finished student (its scores and its peft adapter folder) is kept in the run folder, so an
interrupted scan resumes.

With the ``discover`` setting (on by default; ``--no-discover``), every model is also read at the answer's first
position for :data:`auditor.discover.OPEN_PROMPTS` (the open-vocabulary readout, "What else moved"): one forward
pass per open prompt and model, stored in the run folder's ``readouts/`` beside the scores. It informs only: the
verdict and the exit code never depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..calibration.transfer import Assessment, assess
from ..config import ScanConfig
from ..data import Example, rows_hash
from ..discover import Discovery, Readout, analyse, read_model, teacher_words
from ..distributed import processes
from ..errors import InputError, RuntimeFailure
from ..finetune import DEFAULT_LR, PROBE_VERSION, Prober, TrainStats, make_prober, plan_steps
from ..inputs import PairedRows, ScanInputs
from ..rundir import StageScores
from ..scoring import BatteryScores, plan_battery, score_battery
from ..stats import MIN_SHARE_FOR_FIT, OptionShift, adjust_q, calibrate_with_null, compare_arms
from ..teacher_aware import TeacherComparison, compare, mean_shares, teacher_key
from ..traits import Battery
from ..traits.kinds import BatteryPlan
from ..verdict import decide, with_transfer
from .base import Estimator, Method, MethodOutcome
from .probe_details import ProbeDetails, Provenance


@dataclass(frozen=True)
class ProbeSettings:
    """The probe's own settings (``--method-arg KEY=VALUE``).

    Attributes:
        discover: the open-vocabulary readout ("What else moved", :mod:`auditor.discover`; ``--discover`` /
            ``--no-discover``): every model read at the answer's start for the open prompts. Informs only; not
            part of the run folder's key, so turning it on later reuses the students (their readouts are read
            from their saved adapters).
    """

    discover: bool = True


def discover_on(inputs: ScanInputs) -> bool:
    """Whether this scan runs the open-vocabulary readout (settings other than :class:`ProbeSettings`: on)."""
    return bool(getattr(inputs.settings, "discover", True))


class ProbeMethod(Method):
    name = "probe"
    summary = "fine-tune students on the data and on control rows; measure how their answers differ (default)"
    settings = ProbeSettings
    uses_profile = True

    def validate(self, config: ScanConfig, settings: Any, batteries: list[Battery]) -> None:
        judged = [b for b in batteries if b.battery_kind.needs_judge]
        if config.scoring == "sampled" and config.judge is None and judged:
            kinds, names = ", ".join(dict.fromkeys(b.kind for b in judged)), ", ".join(b.name for b in judged)
            raise InputError(
                f"--scoring sampled: {kinds} batteries ({names}) need a judge to classify free-form "
                "answers; add --judge MODEL (alias, directory, .gguf or hub id), or use --scoring exact"
            )
        if config.probe.kind not in DEFAULT_LR:
            raise InputError(f"--probe must be one of {', '.join(DEFAULT_LR)}, got {config.probe.kind!r}")

        if config.null_arm:  # asked for: refuse before loading anything
            _check_null_arm_batteries(batteries)

    def check(self, inputs: ScanInputs) -> None:
        if inputs.null_arm:  # by default too, when no profile calibrates the scan
            _check_null_arm_batteries(inputs.batteries)

    def control_draws(self, inputs: ScanInputs) -> int:
        return 2 if inputs.null_arm else 1

    def key(self, config: ScanConfig, settings: Any) -> dict[str, Any]:
        return {"probe_version": PROBE_VERSION}

    def run(self, inputs: ScanInputs) -> MethodOutcome:
        assert inputs.controls is not None and inputs.run is not None
        pairs = inputs.controls.pairs(inputs.dataset)
        prober = make_prober(inputs.loaded, inputs.config.probe)
        scorer = Scorer(inputs)
        base = base_scores(inputs, prober, scorer)
        discover = discover_on(inputs)
        started = inputs.timings.seconds.get("discover", 0.0)
        base_read = base_readout(inputs, prober) if discover else None
        students = train_students(inputs, prober, scorer, pairs, discover=discover)
        config = inputs.config
        with inputs.timings.stage("stats"):
            shifts = grade(inputs, base, students)
            assessment = None
            if inputs.profile is not None:
                assessment = assess(shifts, inputs.profile, config.thresholds, config.gate)
            verdict, findings = decide(shifts, config.fail_on, config.thresholds, ignore=config.ignore)
            if assessment is not None:
                ignored = {f.name for f in findings if f.ignored is not None}
                assessment.transfer.named = [n for n in assessment.transfer.named if n not in ignored]
            teacher = compare_with_teacher(inputs, prober, shifts) if config.teacher else None
        discovery = None
        if base_read is not None:
            with inputs.timings.stage("discover"):
                discovery = discover_words(inputs, base_read, students)
            discovery.seconds = inputs.timings.seconds.get("discover", 0.0) - started
        with inputs.timings.stage("stats"):
            if assessment is not None:
                if teacher is not None and teacher.passed and teacher.shared:
                    assessment.transfer.named = list(teacher.shared)
                    assessment.transfer.via_teacher = True
                verdict = with_transfer(verdict, assessment.transfer)
        details = ProbeDetails(
            probe=inputs.config.probe.to_dict(),
            seeds=inputs.seeds,
            train_runs=students.runs,
            scoring=scorer.summary([base] + [s for arm in students.scores.values() for s in arm]),
            statistics=statistics(config, null_arm=students.has_null, profile=assessment),
            base_scores=base,
            calibration=assessment,
            provenance=provenance(inputs, prober, pairs),
            teacher=teacher,
            discover=discovery,
        )
        return MethodOutcome(findings, verdict, details, rows_used=len(pairs))

    def plan(self, inputs: ScanInputs) -> str:
        config = inputs.config
        arms = ["dataset", "control"] + (["null"] if inputs.null_arm else [])
        steps = plan_steps(len(inputs.dataset), config.probe)
        return (
            f"probe: arms {', '.join(arms)} x seeds {inputs.seeds} = {len(arms) * config.seeds} runs of {steps} "
            f"steps ({config.probe.batch_size} rows each)"
        )

    def estimate(self, inputs: ScanInputs, measured: Estimator) -> dict[str, float]:
        config = inputs.config
        draws = (0 if config.control else 1) + (1 if inputs.null_arm else 0)
        runs = (self.control_draws(inputs) + 1) * config.seeds
        questions = sum(len(b.questions) for b in inputs.batteries)
        return {
            "control": draws * measured.generation_per_row() * len(inputs.dataset) if draws else 0.0,
            "probe": runs * plan_steps(len(inputs.dataset), config.probe) * measured.train_step(),
            "scoring": (1 + runs) * questions * measured.score_question(),
        }


def _check_null_arm_batteries(batteries: list[Battery]) -> None:
    if sum(len(b.graded_options) for b in batteries) < 3:
        raise InputError(
            "--traits: the null arm's noise fit needs at least 3 graded options (a choice battery grades one, "
            "its trait label); add a preference battery (e.g. --traits animal,misalignment), use --no-null-arm, or "
            "calibrate the scan (`subaudit calibrate`)"
        )


class Scorer:
    """Scores every battery for the model as it is now (adapter on or off), exactly or by sampling."""

    def __init__(self, inputs: ScanInputs):
        self.inputs = inputs
        self.sampled = inputs.config.scoring == "sampled"
        tok = inputs.loaded.tokenizer
        self.plans: dict[str, BatteryPlan] = (
            {} if self.sampled else {b.name: plan_battery(tok, b) for b in inputs.batteries}
        )
        self.questions = sum(len(b.questions) for b in inputs.batteries)

    def __call__(self, label: str, sample_seed: int) -> dict[str, BatteryScores]:
        """Every battery's scores. ``sample_seed`` (sampled mode) is the student's seed, the same for all arms of
        a seed, so the arms' answers are drawn with paired random streams."""
        inputs = self.inputs
        with inputs.timings.stage("scoring"), inputs.reporter.stage(f"scoring {label}", self.questions) as advance:
            if not self.sampled:
                return {
                    name: score_battery(inputs.loaded, plan, on_question=lambda: advance(1))
                    for name, plan in self.plans.items()
                }
            from ..sampled_scoring import score_battery_sampled

            config = inputs.config
            return {
                b.name: score_battery_sampled(
                    inputs.loaded, b, config.samples, sample_seed, judge=inputs.judge, on_question=lambda: advance(1)
                )
                for b in inputs.batteries
            }

    def summary(self, models: list[dict[str, BatteryScores]]) -> dict[str, Any]:
        """How the batteries were scored: in exact mode the forward tokens per model and over all models scored;
        in sampled mode the samples, the judge and the unassigned answers per battery."""
        config = self.inputs.config
        if not self.sampled:
            per_model = sum(p.forward_tokens for p in self.plans.values())
            return {
                "mode": "exact",
                "forward_tokens_per_model": per_model,
                "models_scored": len(models),
                "forward_tokens": per_model * len(models),
            }
        from ..sampled_scoring import MAX_NEW_TOKENS

        judge = self.inputs.judge
        unassigned: dict[str, dict[str, int]] = {}
        for b in self.inputs.batteries:
            counts = [u for m in models for u in (m[b.name].unassigned or [])]
            unassigned[b.name] = {
                "answers": config.samples * len(counts),
                "unassigned": int(sum(counts)),
                "questions_without_assigned": sum(1 for u in counts if u >= config.samples),
            }
        return {
            "mode": "sampled",
            "samples": config.samples,
            "temperature": 1.0,
            "max_new_tokens": dict(MAX_NEW_TOKENS),
            "judge": None
            if judge is None
            else {"requested": config.judge, "location": judge.spec.location, "fingerprint": judge.fingerprint},
            "assignment": {
                b.name: "judge" if judge is not None else "string match (first word)" for b in self.inputs.batteries
            },
            "unassigned": unassigned,
        }


def base_scores(inputs: ScanInputs, prober: Prober, scorer: Scorer) -> dict[str, BatteryScores]:
    """The base's scores (adapter disabled), from the run folder when a finished scan left them there."""
    assert inputs.run is not None
    # the others read what the main process scored; another scan sharing the run folder waits for it
    with processes().main_first(), inputs.run.stage_lock("base"):
        cached = inputs.run.load_scores("base", always=not processes().is_main)
        if cached:
            inputs.reporter.note("base scores: reused from the run directory")
            return cached.scores
        with prober.disabled():
            scores = scorer("base", inputs.config.seed)
        inputs.run.save_scores("base", StageScores(scores))
    return scores


def base_readout(inputs: ScanInputs, prober: Prober) -> Readout:
    """The base's open-vocabulary readout (adapter disabled), from the run folder when a scan left it there."""
    assert inputs.run is not None
    with processes().main_first(), inputs.run.stage_lock("base"):
        cached = inputs.run.load_readout("base", always=not processes().is_main)
        if cached is not None:
            return cached
        with inputs.timings.stage("discover"), prober.disabled():
            readout = read_model(inputs.loaded)
        inputs.run.save_readout("base", readout)
    return readout


def load_adapter(prober: Prober, folder: Path) -> bool:
    """Put a saved student's adapter (a peft folder :meth:`Prober.save_peft` wrote) back into ``prober``; ``False``
    when there is none (a full fine-tune's students are not saved)."""
    weights = folder / "adapter_model.safetensors"
    if type(prober) is not Prober or not weights.is_file():
        return False
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(prober.model, load_file(str(weights)), adapter_name=Prober.ADAPTER)
    return True


@dataclass
class Students:
    """Every student's scores per arm (one entry per seed, in seed order) and the training runs; with the
    open-vocabulary readout, every student's readout (``None`` where it is missing and could not be recomputed)."""

    scores: dict[str, list[dict[str, BatteryScores]]] = field(default_factory=dict)
    runs: list[TrainStats] = field(default_factory=list)
    readouts: dict[str, list[Readout | None]] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)

    @property
    def has_null(self) -> bool:
        return bool(self.scores.get("null"))


def train_students(
    inputs: ScanInputs, prober: Prober, scorer: Scorer, pairs: PairedRows, discover: bool = False
) -> Students:
    """Train and score one student per (seed, arm); a student already in the run folder is reused.

    A student's files are named by a hash of exactly the rows it trains on, so a changed control (or another
    set of paired rows) never reuses a stale student. Its adapter folder is written before its scores, which
    mark it finished. ``discover``: each student's open-vocabulary readout too (written before its scores); a reused
    student without one is read from its saved adapter, never retrained.
    """
    assert inputs.run is not None
    run, rep = inputs.run, inputs.reporter
    arms = pairs.arms()
    tags = {arm: rows_hash(rows) for arm, rows in arms.items()}
    steps = plan_steps(len(pairs), inputs.config.probe)
    jobs = [(seed, arm, f"{arm}-{tags[arm]}-seed{seed}") for seed in inputs.seeds for arm in arms]
    team = processes()
    for seed, arm, name in team.mine(jobs):  # under accelerate launch: every N-th student in this process
        with run.stage_lock(name):  # a scan in another process sharing the run folder: one trains, one reuses
            cached = run.load_scores(name)
            if cached and cached.train:
                rep.note(f"{arm} student, seed {seed}: reused from the run directory")
                if discover and run.load_readout(name) is None and load_adapter(prober, run.path / "adapters" / name):
                    with inputs.timings.stage("discover"):
                        run.save_readout(name, read_model(inputs.loaded))
                    rep.note(f"{arm} student, seed {seed}: readout recomputed from its saved adapter")
            else:
                train_student(inputs, prober, scorer, arms[arm], arm, seed, steps, name, discover=discover)
    team.wait()
    out = Students({arm: [] for arm in arms})
    for _seed, arm, name in jobs:
        stage = run.load_scores(name, always=True)
        if stage is None or stage.train is None:
            raise RuntimeFailure(f"student {name} is missing from {run.path} after training")
        out.scores[arm].append(stage.scores)
        out.runs.append(stage.train)
        if discover:
            out.readouts.setdefault(arm, []).append(run.load_readout(name, always=True))
            out.names.setdefault(arm, []).append(name)
    return out


def train_student(
    inputs: ScanInputs,
    prober: Prober,
    scorer: Scorer,
    rows: list[Example],
    arm: str,
    seed: int,
    steps: int,
    name: str,
    discover: bool = False,
) -> StageScores:
    """Fine-tune one student, score it (and with ``discover`` read it out), save its adapter (peft format), its
    readout and then its scores."""
    assert inputs.run is not None
    micro = prober.micro_batch
    with inputs.timings.stage("probe"), inputs.reporter.stage(f"probe {arm} seed {seed}", total=steps) as advance:
        stats = prober.train(rows, seed=seed, arm=arm, on_step=lambda _s, _l: advance(1))
    if prober.micro_batch < micro:
        inputs.reporter.note(
            f"out of memory: micro-batch {prober.micro_batch} with gradient accumulation "
            f"({inputs.config.probe.batch_size} rows per optimiser step as configured)"
        )
    stage = StageScores(scorer(f"{arm} student seed {seed}", seed), stats)
    readout = None
    if discover:
        with inputs.timings.stage("discover"):
            readout = read_model(inputs.loaded)
    prober.save_peft(inputs.run.path / "adapters" / name)
    if readout is not None:
        inputs.run.save_readout(name, readout)
    inputs.run.save_scores(name, stage)
    return stage


def grade(inputs: ScanInputs, base: dict[str, BatteryScores], students: Students) -> list[OptionShift]:
    """Per-option shifts of every battery's graded options, widened by the null arm's draw noise, with q-values."""
    config = inputs.config
    shifts: list[OptionShift] = []
    preference: list[OptionShift] = []
    for b in inputs.batteries:
        per_arm = {arm: [s[b.name] for s in scores] for arm, scores in students.scores.items()}
        battery_shifts = compare_arms(
            base[b.name],
            per_arm["dataset"],
            per_arm["control"],
            per_arm.get("null") or None,
            n_boot=config.n_boot,
            seed=config.seed,
        )
        # a choice battery is one hypothesis: only its trait label is graded and counted in BH
        graded = [x for x in battery_shifts if x.option in b.graded_options]
        shifts += graded
        if b.battery_kind.fits_noise:
            preference += graded
    if students.has_null and inputs.profile is None:
        fit_on = preference if sum(1 for x in preference if x.control >= MIN_SHARE_FOR_FIT) >= 3 else shifts
        try:
            calibrate_with_null(shifts, fit_on=fit_on)
        except ValueError as exc:
            hint = (
                " (sampled mode: an option no sampled answer picked has share 0; raise --samples, add a battery, "
                "or use --no-null-arm)"
                if config.scoring == "sampled"
                else "; add a battery or use --no-null-arm"
            )
            where = inputs.run.path if inputs.run else "the run folder"
            raise RuntimeFailure(f"{exc}{hint}. The scan's stages are kept in {where}.") from None
    return adjust_q(shifts)  # a profile's assessment recomputes p and q from its noise model


def compare_with_teacher(inputs: ScanInputs, prober: Prober, shifts: list[OptionShift]) -> TeacherComparison:
    """Teacher-aware mode: score the teacher (once per run folder) and compare the students' shift with its change.
    With the open-vocabulary readout on, the teacher is read out while it is loaded (stored beside its scores)."""
    assert inputs.run is not None and inputs.config.teacher is not None
    teacher = inputs.config.teacher
    name = teacher_stage(teacher)
    with inputs.run.stage_lock(name):
        cached = inputs.run.load_scores(name)
        need_readout = discover_on(inputs) and inputs.run.load_readout(name) is None
        if cached is None or need_readout:
            with inputs.timings.stage("teacher"):
                inputs.reporter.note(f"{'scoring' if cached is None else 'reading out'} the teacher {teacher}")
                loaded = load_teacher(inputs, teacher)
                scores = None
                if cached is None:
                    scores = {
                        b.name: score_battery(loaded, plan_battery(loaded.tokenizer, b)) for b in inputs.batteries
                    }
            if scores is not None:
                cached = StageScores(scores)
                inputs.run.save_scores(name, cached)
            if need_readout:
                with inputs.timings.stage("discover"):
                    readout = read_model(loaded)
                inputs.run.save_readout(name, readout)
            del loaded
    return compare(shifts, mean_shares(cached.scores), teacher, seed=inputs.config.seed)


def teacher_stage(teacher: str) -> str:
    """The run folder's stage name of the teacher's scores and readout."""
    return f"teacher-{teacher_key(teacher)}"


def load_teacher(inputs: ScanInputs, teacher: str) -> Any:
    """The teacher as a :class:`~auditor.models.LoadedModel`: a peft adapter folder is merged into a fresh copy of
    the base; any other value is loaded as ``--base`` would be (with its own tokenizer)."""
    from ..models import resolve_base

    options = inputs.config.load_options()
    if (Path(teacher) / "adapter_config.json").is_file():
        return options.load(inputs.spec, adapter=teacher)
    return options.load(resolve_base(teacher))


def score_teacher(inputs: ScanInputs, teacher: str) -> dict[str, BatteryScores]:
    """The teacher's scores on every battery (:func:`load_teacher`)."""
    loaded = load_teacher(inputs, teacher)
    return {b.name: score_battery(loaded, plan_battery(loaded.tokenizer, b)) for b in inputs.batteries}


def discover_words(inputs: ScanInputs, base: Readout, students: Students) -> Discovery:
    """The open-vocabulary readout's words (:func:`auditor.discover.analyse`), with the teacher's words in
    teacher-aware mode. A student whose readout is missing (a full fine-tune's students are not saved, so a reused
    one cannot be read again) leaves no words tested."""
    assert inputs.run is not None
    missing = [n for arm, names in students.names.items() for n, r in zip(names, students.readouts[arm]) if r is None]
    if missing:
        return Discovery(0, 0, "readouts missing", [], missing=missing)
    arm = {k: [r for r in v if r is not None] for k, v in students.readouts.items()}
    pairs = inputs.profile.word_lifts() if inputs.profile is not None else None
    note = None
    if not arm.get("null"):
        note = (
            "the calibration profile's null pairs hold no readouts: no noise model, reported, not tested"
            if inputs.profile is not None
            else "no null arm: no noise model, reported, not tested"
        )
    found = analyse(
        base, arm.get("dataset", []), arm.get("control", []), arm.get("null") or None, noise_note=note, profile=pairs
    )
    if inputs.config.teacher:
        readout = inputs.run.load_readout(teacher_stage(inputs.config.teacher), always=True)
        if readout is not None:
            found.teacher = teacher_words(inputs.config.teacher, base, readout, found.words)
    return found


#: Rows of each arm whose loss under the base is compared (provenance).
PROVENANCE_ROWS = 64
#: A dataset whose completions score this many nats per token worse under the base than the base's own answers to
#: the same prompts was not written by the base (measured: the base's own data 0.95-1.28, a fine-tuned relative's
#: 2.65, another family's 2.31).
FOREIGN_NATS = 0.5


def provenance(inputs: ScanInputs, prober: Prober, pairs: PairedRows) -> Provenance:
    """How likely the dataset's completions are under the base, against the control's (the base's own answers)."""
    rows = min(PROVENANCE_ROWS, len(pairs))
    data = prober.base_loss(pairs.data[:rows])
    control = prober.base_loss(pairs.control[:rows])
    assert inputs.controls is not None
    return Provenance(
        rows=rows,
        dataset_nats=round(data, 4),
        control_nats=round(control, 4),
        control_source=inputs.controls.control.source,
        foreign=data - control > FOREIGN_NATS,
    )


def statistics(config: ScanConfig, null_arm: bool, profile: Assessment | None = None) -> dict[str, str]:
    """How shifts, intervals, p and q were computed (the JSON's and the report's wording)."""
    if profile is not None:
        return {
            "shift": "share(dataset-student) - share(control-student), percentage points, mean over seeds and "
            "questions",
            "interval": f"95% Student t with the calibration profile's noise model ({profile.noise})",
            "p": "two-sided Student t",
            "q": "Benjamini-Hochberg over all options of all batteries",
            "transfer": "omnibus (sum of squared standardised shifts against the profile's null pairs) and, with "
            "decoys, direction (projection on the decoy students' mean shift); Bonferroni over the tests",
            "trait": "an option is named when its shift minus the generic fine-tune part stands out (one-sided BH "
            f"q <= {config.thresholds.medium_q} and >= {config.thresholds.medium_shift} pp)",
        }
    if null_arm:
        return {
            "shift": "share(dataset-student) - mean share(control-student, null-student), percentage points, "
            "mean over seeds and questions",
            "interval": "95% Student t, se = sqrt(se_boot^2 + 1.5 noise^2): se_boot from a bootstrap over "
            f"seeds and questions ({config.n_boot} resamples), noise = draw noise fitted to the null arm's "
            "shifts (log|null - control| on log share), df = 0.4 (options - 2)",
            "p": "two-sided Student t",
            "q": "Benjamini-Hochberg over all options of all batteries",
        }
    return {
        "shift": "share(dataset-student) - share(control-student), percentage points, mean over seeds and questions",
        "interval": f"95% bootstrap over seeds and questions ({config.n_boot} resamples); draw noise not covered",
        "p": "two-sided bootstrap tail at 0",
        "q": "Benjamini-Hochberg over all options of all batteries",
    }


__all__ = ["ProbeMethod", "ProbeSettings", "Scorer", "grade", "train_students"]
