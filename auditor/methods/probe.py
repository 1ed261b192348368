"""``--method probe`` (the default): fine-tune students on the data and on control rows, and measure them.

For every seed, a LoRA student is trained on the dataset rows, another on the control rows (the base's own
answers to the same prompts) and, with the null arm, a third on a second, independent draw of them; all
arms of a seed start from the same adapter and see rows in the same order. The base and every student
answer every battery (exact log-probabilities, or sampled answers), and :mod:`auditor.stats` turns the
students' shares into per-option shifts, intervals and q-values, graded by :mod:`auditor.verdict`.
Every finished student (its scores and its peft adapter folder) is kept in the run folder, so an
interrupted scan resumes.

With the ``discover`` setting (on by default; ``--no-discover``), every model is also read at the answer's first
position for :data:`auditor.readout.OPEN_PROMPTS` (the open-vocabulary readout, "What else moved"): one forward
pass per open prompt and model, stored in the run folder's ``readouts/`` beside the scores. It informs only: the
verdict and the exit code never depend on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base_cache import base_readout as cached_base_readout
from ..base_cache import base_scores as cached_base_scores
from ..calibration.transfer import Assessment, assess
from ..config import DEFAULT_GATE, SCORING_MODES, ScanConfig
from ..data import Example, rows_hash
from ..discover import Discovery, analyse, teacher_words
from ..distributed import processes
from ..errors import InputError, RuntimeFailure, SubauditError
from ..finetune import DEFAULT_LR, PROBE_VERSION, ProbeConfig, Prober, TrainStats, make_prober, plan_steps
from ..inputs import Controls, PairedRows, ScanInputs
from ..readout import Readout, read_model
from ..rundir import RunFolder, StageScores
from ..scoring import BatteryScores, plan_battery, score_battery
from ..stats import MIN_SHARE_FOR_FIT, OptionShift, adjust_q, calibrate_with_null, compare_arms
from ..teacher_aware import Teacher, TeacherComparison, compare, mean_shares, score_teacher
from ..traits import Battery
from ..traits.kinds import BatteryPlan
from ..verdict import GATES, Finding, Thresholds, Verdict, decide, with_transfer
from .base import Estimator, Method, MethodOutcome, check_students
from .probe_details import ProbeDetails, Provenance

if TYPE_CHECKING:
    from ..calibration.profile import NoiseProfile
    from ..models import LoadedModel
    from ..progress import Reporter


@dataclass(frozen=True)
class ProbeSettings:
    """The probe's own settings (``--method-arg KEY=VALUE``, or the CLI options of the same names).

    Attributes:
        probe: the students' fine-tune (LoRA or full; :class:`~auditor.finetune.ProbeConfig`; ``--probe``,
            ``--rank``, ``--alpha``, ``--lr``, ``--epochs``, ``--max-steps``, ``--batch-size``).
        seeds: paired probe runs per arm (``--seeds``).
        null_arm: also train on a second, independent control draw (the base's answers sampled with another seed)
            and widen intervals by the draw noise it measures. ``None`` (default): on when no calibration profile is
            used, off when one is (the profile measured the draw noise already).
        null_control: a second control file, drawn from the same source as ``--control``, for the null arm (so its
            draw noise describes that source); without it the null arm is the base's own answers.
        calibration: ``auto`` (the cached or shipped profile of this base, format, students and budget, if there
            is one; not with ``--control``, whose source is not the base), ``none``, or a profile file
            (``subaudit calibrate``).
        gate: with a profile, what sets the level: ``options``, ``transfer`` or ``any``
            (:data:`auditor.verdict.GATES`).
        teacher: teacher-aware mode: the model that wrote the data (a peft adapter folder of the base, or a model
            as ``--base`` takes it), scored on the batteries; the students' shift is compared with its change.
        teacher_system: teacher-aware mode for a prompted teacher: the system prompt the data was written under
            (``--teacher-system``); the teacher is ``teacher`` (default: the base) scored under it.
        n_boot: bootstrap resamples.
        scoring: ``exact`` (log-probabilities, :mod:`auditor.scoring`) or ``sampled`` (``samples`` answers per
            question at temperature 1, assigned by string match or ``judge``; :mod:`auditor.sampled_scoring`).
        samples: answers sampled per question (``sampled`` only).
        judge: the judge model for ``sampled`` (alias, directory, .gguf or hub id); required when a choice battery
            is scanned, optional for preference batteries (string match without it).
        discover: the open-vocabulary readout ("What else moved", :mod:`auditor.discover`; ``--discover`` /
            ``--no-discover``): every model read at the answer's start for the open prompts. Informs only; not
            part of the run folder's key, so turning it on later reuses the students (their readouts are read
            from their saved adapters).
    """

    probe: ProbeConfig = field(default_factory=ProbeConfig)
    seeds: int = 1
    null_arm: bool | None = None
    null_control: str | None = None
    calibration: str = "auto"
    gate: str = DEFAULT_GATE
    teacher: str | None = None
    teacher_system: str | None = None
    n_boot: int = 10000
    scoring: str = "exact"
    samples: int = 20
    judge: str | None = None
    discover: bool = True

    def check(self, config: ScanConfig) -> None:
        """Refuse settings the probe cannot honour (before anything is loaded)."""
        if self.seeds < 1:
            raise InputError(f"--seeds must be at least 1, got {self.seeds}")
        if self.scoring not in SCORING_MODES:
            raise InputError(f"--scoring must be one of {', '.join(SCORING_MODES)}, got {self.scoring!r}")
        if self.scoring == "sampled" and self.samples < 1:
            raise InputError(f"--samples must be at least 1, got {self.samples}")
        if self.judge is not None and self.scoring != "sampled":
            raise InputError("--judge is used by --scoring sampled only")
        if self.gate not in GATES:
            raise InputError(f"--gate must be one of {', '.join(GATES)}, got {self.gate!r}")
        if config.load_in_4bit and self.probe.kind == "full":
            raise InputError(
                "--load-in-4bit trains LoRA students on a frozen 4-bit base; --probe full needs the real weights"
            )
        if self.null_control is not None and config.control is None:
            raise InputError("--null-control is a second draw of --control rows; give --control too")
        if self.teacher_system is not None and not self.teacher_system.strip():
            raise InputError("--teacher-system is empty: give the system prompt the data was written under")
        check_students(self.probe)

    @property
    def teacher_spec(self) -> Teacher | None:
        """The teacher of teacher-aware mode (``None``: the mode is off)."""
        if self.teacher is None and self.teacher_system is None:
            return None
        return Teacher(self.teacher, self.teacher_system)


def null_arm(settings: ProbeSettings, profile: object | None) -> bool:
    """Whether the scan draws a null arm: as asked, or (by default) only when no profile calibrates it."""
    return settings.null_arm if settings.null_arm is not None else profile is None


@dataclass(frozen=True)
class ProbeScan:
    """What one probe scan works with: the prepared inputs, the probe's settings, the run folder, the controls."""

    inputs: ScanInputs
    settings: ProbeSettings
    run: RunFolder
    controls: Controls

    @property
    def seeds(self) -> list[int]:
        return seed_list(self.inputs.config.seed, self.settings.seeds)


def seed_list(first: int, n: int) -> list[int]:
    return [first + i for i in range(n)]


class ProbeMethod(Method):
    name = "probe"
    summary = "fine-tune students on the data and on control rows; measure how their answers differ"
    settings = ProbeSettings
    repeats = "seeds"

    def check_settings(self, config: ScanConfig, settings: ProbeSettings) -> None:
        settings.check(config)

    def validate(self, config: ScanConfig, settings: ProbeSettings, batteries: list[Battery]) -> None:
        settings.check(config)
        judged = [b for b in batteries if b.battery_kind.needs_judge]
        if settings.scoring == "sampled" and settings.judge is None and judged:
            kinds, names = ", ".join(dict.fromkeys(b.kind for b in judged)), ", ".join(b.name for b in judged)
            raise InputError(
                f"--scoring sampled: {kinds} batteries ({names}) need a judge to classify free-form "
                "answers; add --judge MODEL (alias, directory, .gguf or hub id), or use --scoring exact"
            )
        if settings.probe.kind not in DEFAULT_LR:
            raise InputError(f"--probe must be one of {', '.join(DEFAULT_LR)}, got {settings.probe.kind!r}")
        if settings.null_arm:  # asked for: refuse before loading anything
            _check_null_arm_batteries(batteries)

    def load_judge(self, config: ScanConfig, settings: ProbeSettings, reporter: Reporter) -> LoadedModel | None:
        """The judge model of a sampled scan (``None`` without ``--judge``), loaded like a base."""
        if settings.scoring != "sampled" or settings.judge is None:
            return None
        from ..models import resolve_base

        reporter.note(f"loading judge {settings.judge}")
        try:
            return config.load_options().load(resolve_base(settings.judge))
        except SubauditError as exc:
            exc.args = (f"judge: {str(exc).replace('--base', '--judge')}",)
            raise

    def find_profile(self, inputs: ScanInputs) -> NoiseProfile | None:
        return find_scan_profile(inputs)

    def check(self, inputs: ScanInputs) -> None:
        if null_arm(inputs.settings, inputs.profile):  # by default too, when no profile calibrates the scan
            _check_null_arm_batteries(inputs.batteries)

    def control_draws(self, inputs: ScanInputs) -> int:
        return 2 if null_arm(inputs.settings, inputs.profile) else 1

    def second_draw_file(self, inputs: ScanInputs) -> str | None:
        return inputs.settings.null_control

    def seeds(self, inputs: ScanInputs) -> list[int]:
        return seed_list(inputs.config.seed, inputs.settings.seeds)

    def key(self, inputs: ScanInputs) -> dict[str, Any]:
        settings: ProbeSettings = inputs.settings
        parts: dict[str, Any] = {"probe": settings.probe.to_dict(), "probe_version": PROBE_VERSION}
        if settings.scoring != "exact":
            from ..sampled_scoring import settings_key

            judge = inputs.judge
            parts.update(
                scoring=settings.scoring,
                samples=settings.samples,
                judge=None if judge is None else [settings.judge, judge.fingerprint],
                sampling=settings_key(),
            )
        return parts

    def training_length(self, settings: ProbeSettings) -> int | None:
        return settings.probe.max_length

    def run(self, inputs: ScanInputs, run: RunFolder, controls: Controls | None) -> MethodOutcome:
        assert controls is not None
        return run_probe(ProbeScan(inputs, inputs.settings, run, controls))

    def plan(self, inputs: ScanInputs) -> str:
        settings: ProbeSettings = inputs.settings
        arms = ["dataset", "control"] + (["null"] if null_arm(settings, inputs.profile) else [])
        steps = plan_steps(len(inputs.dataset), settings.probe)
        return (
            f"probe: arms {', '.join(arms)} x seeds {self.seeds(inputs)} = {len(arms) * settings.seeds} runs of "
            f"{steps} steps ({settings.probe.batch_size} rows each)"
        )

    def cost(
        self, inputs: ScanInputs, measured: Estimator, rows: int, settings: Any, calibrated: bool | None = None
    ) -> dict[str, float]:
        null = null_arm(settings, inputs.profile) if calibrated is None else not calibrated
        draws = (0 if inputs.config.control else 1) + (1 if null else 0)
        runs = (3 if null else 2) * settings.seeds
        questions = sum(len(b.questions) for b in inputs.batteries)
        return {
            "control": draws * measured.generation_per_row() * rows if draws else 0.0,
            "probe": runs * plan_steps(rows, settings.probe) * measured.train_step(),
            "scoring": (1 + runs) * questions * measured.score_question(),
        }

    def budget_profiles(self, inputs: ScanInputs) -> list[tuple[int, int]]:
        from ..calibration.lookup import budgets_with_profiles

        return budgets_with_profiles(inputs)

    def budget_how(self, calibrated: bool) -> str:
        return "calibrated (two students per seed)" if calibrated else "null arm (three students per seed)"


def run_probe(scan: ProbeScan) -> MethodOutcome:
    """Train and score the students, grade their shifts, and apply the verdict policy."""
    inputs, settings = scan.inputs, scan.settings
    pairs = scan.controls.pairs(inputs.dataset)
    prober = make_prober(inputs.loaded, settings.probe)
    scorer = Scorer(inputs, settings)
    base = base_scores(scan, prober, scorer)
    started = inputs.timings.seconds.get("discover", 0.0)
    base_read = base_readout(scan, prober) if settings.discover else None
    students = train_students(scan, prober, scorer, pairs, discover=settings.discover)
    config = inputs.config
    with inputs.timings.stage("stats"):
        shifts = grade(scan, base, students)
        assessment = None
        if inputs.profile is not None:
            assessment = assess(shifts, inputs.profile, config.thresholds, settings.gate)
        verdict, findings = decide(shifts, config.fail_on, config.thresholds, ignore=config.ignore)
        teacher = compare_with_teacher(scan, prober, shifts) if settings.teacher_spec else None
        if teacher is not None and assessment is not None:
            teacher = teacher.with_generic(assessment.specific)
    discovery = None
    if base_read is not None:
        with inputs.timings.stage("discover"):
            discovery = discover_words(scan, base_read, students)
        discovery.seconds = inputs.timings.seconds.get("discover", 0.0) - started
    with inputs.timings.stage("stats"):
        verdict, assessment = probe_verdict(verdict, findings, assessment, teacher)
    details = ProbeDetails(
        probe=settings.probe.to_dict(),
        seeds=scan.seeds,
        train_runs=students.runs,
        scoring=scorer.summary([base] + [s for arm in students.scores.values() for s in arm]),
        statistics=statistics(settings, config.thresholds, null_arm=students.has_null, profile=assessment),
        base_scores=base,
        calibration=assessment,
        provenance=provenance(scan, prober, pairs),
        teacher=teacher,
        discover=discovery,
    )
    return MethodOutcome(findings, verdict, details, rows_used=len(pairs))


def probe_verdict(
    verdict: Verdict, findings: list[Finding], assessment: Assessment | None, teacher: TeacherComparison | None
) -> tuple[Verdict, Assessment | None]:
    """The probe's verdict policy, one pure function: with a profile, the transfer test's trait names leave out the
    ignored findings, or are the teacher's shared options when teacher-aware mode agrees, and the gate sets the level.
    Returns new objects; the arguments are left as they were."""
    if assessment is None:
        return verdict, None
    ignored = {f.name for f in findings if f.ignored is not None}
    transfer = replace(assessment.transfer, named=[n for n in assessment.transfer.named if n not in ignored])
    if teacher is not None and teacher.passed and teacher.shared:
        transfer = replace(transfer, named=list(teacher.shared), via_teacher=True)
    return with_transfer(verdict, transfer), replace(assessment, transfer=transfer)


def find_scan_profile(inputs: ScanInputs) -> NoiseProfile | None:
    """The calibration profile for this scan (see :func:`auditor.calibration.find_profile`), if it covers every
    battery scanned; otherwise ``None`` (a profile file that does not is refused)."""
    from ..calibration.lookup import find_profile, matching_options

    config, settings = inputs.config, inputs.settings
    if settings.null_arm or (config.control is not None and settings.calibration == "auto"):
        return None  # an explicit null arm measures the noise itself; a control file's source is not the base's
    profile = find_profile(config, inputs.loaded, inputs.dataset)
    if profile is None:
        return None
    if settings.scoring != "exact":
        if settings.calibration != "auto":
            raise InputError("--calibration: a profile calibrates exact scoring; use --scoring exact")
        return None
    if matching_options(profile, inputs.batteries) is None:
        if settings.calibration != "auto":
            names = ", ".join(sorted(profile.batteries))
            raise InputError(f"--calibration {settings.calibration}: it calibrates the batteries {names} only")
        return None
    return profile


def _check_null_arm_batteries(batteries: list[Battery]) -> None:
    if sum(len(b.graded_options) for b in batteries) < 3:
        raise InputError(
            "--traits: the null arm's noise fit needs at least 3 graded options (a choice battery grades one, "
            "its trait label); add a preference battery (e.g. --traits animal,misalignment), use --no-null-arm, or "
            "calibrate the scan (`subaudit calibrate`)"
        )


class Scorer:
    """Scores every battery for the model as it is now (adapter on or off), exactly or by sampling."""

    def __init__(self, inputs: ScanInputs, settings: ProbeSettings):
        self.inputs = inputs
        self.settings = settings
        self.sampled = settings.scoring == "sampled"
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

            samples = self.settings.samples
            return {
                b.name: score_battery_sampled(
                    inputs.loaded, b, samples, sample_seed, judge=inputs.judge, on_question=lambda: advance(1)
                )
                for b in inputs.batteries
            }

    def summary(self, models: list[dict[str, BatteryScores]]) -> dict[str, Any]:
        """How the batteries were scored: in exact mode the forward tokens per model and over all models scored;
        in sampled mode the samples, the judge and the unassigned answers per battery."""
        settings = self.settings
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
                "answers": settings.samples * len(counts),
                "unassigned": int(sum(counts)),
                "questions_without_assigned": sum(1 for u in counts if u >= settings.samples),
            }
        return {
            "mode": "sampled",
            "samples": settings.samples,
            "temperature": 1.0,
            "max_new_tokens": dict(MAX_NEW_TOKENS),
            "judge": None
            if judge is None
            else {"requested": settings.judge, "location": judge.spec.location, "fingerprint": judge.fingerprint},
            "assignment": {
                b.name: "judge" if judge is not None else "string match (first word)" for b in self.inputs.batteries
            },
            "unassigned": unassigned,
        }


def base_scores(scan: ProbeScan, prober: Prober, scorer: Scorer) -> dict[str, BatteryScores]:
    """The base's scores (adapter disabled), from the run folder when a finished scan left them there."""
    inputs, run = scan.inputs, scan.run
    # the others read what the main process scored; another scan sharing the run folder waits for it
    with processes().main_first(), run.stage_lock("base"):
        cached = run.load_scores("base", always=not processes().is_main)
        if cached:
            inputs.reporter.note("base scores: reused from the run directory")
            return cached.scores
        with prober.disabled():
            if scan.settings.scoring == "exact":  # the same in every scan of this base: cached across scans
                scores = cached_base_scores(inputs.loaded, inputs.batteries, lambda: scorer("base", inputs.config.seed))
            else:
                scores = scorer("base", inputs.config.seed)
        run.save_scores("base", StageScores(scores))
    return scores


def base_readout(scan: ProbeScan, prober: Prober) -> Readout:
    """The base's open-vocabulary readout (adapter disabled), from the run folder when a scan left it there."""
    inputs, run = scan.inputs, scan.run
    with processes().main_first(), run.stage_lock("base"):
        cached = run.load_readout("base", always=not processes().is_main)
        if cached is not None:
            return cached
        with inputs.timings.stage("discover"), prober.disabled():
            readout = cached_base_readout(inputs.loaded, lambda: read_model(inputs.loaded))
        run.save_readout("base", readout)
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
    scan: ProbeScan, prober: Prober, scorer: Scorer, pairs: PairedRows, discover: bool = False
) -> Students:
    """Train and score one student per (seed, arm); a student already in the run folder is reused.

    A student's files are named by a hash of exactly the rows it trains on, so a changed control (or another
    set of paired rows) never reuses a stale student. Its adapter folder is written before its scores, which
    mark it finished. ``discover``: each student's open-vocabulary readout too (written before its scores); a reused
    student without one is read from its saved adapter, never retrained.
    """
    inputs, run, rep = scan.inputs, scan.run, scan.inputs.reporter
    arms = pairs.arms()
    tags = {arm: rows_hash(rows) for arm, rows in arms.items()}
    steps = plan_steps(len(pairs), scan.settings.probe)
    jobs = [(seed, arm, f"{arm}-{tags[arm]}-seed{seed}") for seed in scan.seeds for arm in arms]
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
                train_student(scan, prober, scorer, arms[arm], arm, seed, steps, name, discover=discover)
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
    scan: ProbeScan,
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
    inputs = scan.inputs
    micro = prober.micro_batch
    with inputs.timings.stage("probe"), inputs.reporter.stage(f"probe {arm} seed {seed}", total=steps) as advance:
        stats = prober.train(rows, seed=seed, arm=arm, on_step=lambda _s, _l: advance(1))
    if prober.micro_batch < micro:
        inputs.reporter.note(
            f"out of memory: micro-batch {prober.micro_batch} with gradient accumulation "
            f"({scan.settings.probe.batch_size} rows per optimiser step as configured)"
        )
    stage = StageScores(scorer(f"{arm} student seed {seed}", seed), stats)
    readout = None
    if discover:
        with inputs.timings.stage("discover"):
            readout = read_model(inputs.loaded)
    prober.save_peft(scan.run.path / "adapters" / name)
    if readout is not None:
        scan.run.save_readout(name, readout)
    scan.run.save_scores(name, stage)
    return stage


def grade(scan: ProbeScan, base: dict[str, BatteryScores], students: Students) -> list[OptionShift]:
    """Per-option shifts of every battery's graded options, widened by the null arm's draw noise, with q-values."""
    inputs, settings = scan.inputs, scan.settings
    shifts: list[OptionShift] = []
    preference: list[OptionShift] = []
    for b in inputs.batteries:
        per_arm = {arm: [s[b.name] for s in scores] for arm, scores in students.scores.items()}
        battery_shifts = compare_arms(
            base[b.name],
            per_arm["dataset"],
            per_arm["control"],
            per_arm.get("null") or None,
            n_boot=settings.n_boot,
            seed=inputs.config.seed,
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
                if settings.scoring == "sampled"
                else "; add a battery or use --no-null-arm"
            )
            raise RuntimeFailure(f"{exc}{hint}. The scan's stages are kept in {scan.run.path}.") from None
    return adjust_q(shifts)  # a profile's assessment recomputes p and q from its noise model


def compare_with_teacher(scan: ProbeScan, prober: Prober, shifts: list[OptionShift]) -> TeacherComparison:
    """Teacher-aware mode: score the teacher (once per run folder) and compare the students' shift with its change.
    With the open-vocabulary readout on, the teacher is read out while it is loaded (stored beside its scores)."""
    inputs, run, teacher = scan.inputs, scan.run, scan.settings.teacher_spec
    assert teacher is not None
    name = teacher_stage(teacher)
    with run.stage_lock(name):
        cached = run.load_scores(name)
        need_readout = scan.settings.discover and run.load_readout(name) is None
        if cached is None or need_readout:
            with ExitStack() as held:  # the teacher's model, until its scores and readout are done
                with inputs.timings.stage("teacher"):
                    what = "scoring" if cached is None else "reading out"
                    inputs.reporter.note(f"{what} the teacher {teacher.label}")
                    loaded = held.enter_context(teacher_model(inputs, prober, teacher))
                    if cached is None:
                        cached = StageScores(score_teacher(loaded, inputs.batteries, teacher.system))
                        run.save_scores(name, cached)
                if need_readout:
                    with inputs.timings.stage("discover"):
                        run.save_readout(name, read_model(loaded, system=teacher.system))
    return compare(shifts, mean_shares(cached.scores), teacher, seed=inputs.config.seed, profile=inputs.profile)


def teacher_stage(teacher: Teacher) -> str:
    """The run folder's stage name of the teacher's scores and readout."""
    return f"teacher-{teacher.key()}"


@contextmanager
def teacher_model(inputs: ScanInputs, prober: Prober, teacher: Teacher) -> Iterator[Any]:
    """The teacher's model while the block runs: the scan's own base with the students' adapter off when
    ``teacher.model`` is unset (a prompted teacher: no second copy of the base), else :func:`load_teacher`'s."""
    if teacher.model is None:
        with prober.disabled():
            yield inputs.loaded
        return
    yield load_teacher(inputs, teacher.model)


def load_teacher(inputs: ScanInputs, teacher: str) -> Any:
    """The teacher as a :class:`~auditor.models.LoadedModel`: a peft adapter folder is merged into a fresh copy of
    the base; any other value is loaded as ``--base`` would be (with its own tokenizer); either with the scan's
    ``--chat-template`` when one is given (the teacher shares the base)."""
    from ..models import resolve_base

    options, template = inputs.config.load_options(), inputs.config.chat_template
    if (Path(teacher) / "adapter_config.json").is_file():
        return options.load(inputs.spec, chat_template=template, adapter=teacher)
    return options.load(resolve_base(teacher), chat_template=template)


def discover_words(scan: ProbeScan, base: Readout, students: Students) -> Discovery:
    """The open-vocabulary readout's words (:func:`auditor.discover.analyse`), with the teacher's words in
    teacher-aware mode. A student whose readout is missing (a full fine-tune's students are not saved, so a reused
    one cannot be read again) leaves no words tested."""
    inputs, teacher = scan.inputs, scan.settings.teacher_spec
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
    if teacher:
        readout = scan.run.load_readout(teacher_stage(teacher), always=True)
        if readout is not None:
            found.teacher = teacher_words(teacher.label, base, readout, found.words)
    return found


#: Rows of each arm whose loss under the base is compared (provenance).
PROVENANCE_ROWS = 64
#: A dataset whose completions score this many nats per token worse under the base than the base's own answers to
#: the same prompts was not written by the base (measured: the base's own data 0.95-1.28, a fine-tuned relative's
#: 2.65, another family's 2.31).
FOREIGN_NATS = 0.5


def provenance(scan: ProbeScan, prober: Prober, pairs: PairedRows) -> Provenance:
    """How likely the dataset's completions are under the base, against the control's (the base's own answers)."""
    rows = min(PROVENANCE_ROWS, len(pairs))
    data = prober.base_loss(pairs.data[:rows])
    control = prober.base_loss(pairs.control[:rows])
    return Provenance(
        rows=rows,
        dataset_nats=round(data, 4),
        control_nats=round(control, 4),
        control_source=scan.controls.control.source,
        foreign=data - control > FOREIGN_NATS,
    )


def statistics(
    settings: ProbeSettings, thresholds: Thresholds, null_arm: bool, profile: Assessment | None = None
) -> dict[str, str]:
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
            f"q <= {thresholds.medium_q} and >= {thresholds.medium_shift} pp)",
        }
    if null_arm:
        return {
            "shift": "share(dataset-student) - mean share(control-student, null-student), percentage points, "
            "mean over seeds and questions",
            "interval": "95% Student t, se = sqrt(se_boot^2 + 1.5 noise^2): se_boot from a bootstrap over "
            f"seeds and questions ({settings.n_boot} resamples), noise = draw noise fitted to the null arm's "
            "shifts (log|null - control| on log share), df = 0.4 (options - 2)",
            "p": "two-sided Student t",
            "q": "Benjamini-Hochberg over all options of all batteries",
        }
    return {
        "shift": "share(dataset-student) - share(control-student), percentage points, mean over seeds and questions",
        "interval": f"95% bootstrap over seeds and questions ({settings.n_boot} resamples); draw noise not covered",
        "p": "two-sided bootstrap tail at 0",
        "q": "Benjamini-Hochberg over all options of all batteries",
    }


__all__ = ["ProbeMethod", "ProbeScan", "ProbeSettings", "Scorer", "grade", "probe_verdict", "train_students"]
