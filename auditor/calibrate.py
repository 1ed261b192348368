"""Building a calibration profile: ``subaudit calibrate`` (what a profile is: :mod:`auditor.calibration`).

Beside :mod:`auditor.generate` and :mod:`auditor.teacher`, whose ground truth it builds on: each null pair is a
dataset the base writes, each decoy pair one a decoy teacher writes, and every pair is scanned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .calibration.lookup import battery_hash, profile_key
from .calibration.profile import NoiseProfile, ProfileDraw
from .completion_formats import generate_format
from .config import DEFAULT_MAX_ROWS, ScanConfig
from .errors import InputError
from .finetune import ProbeConfig
from .io import Damaged, atomic_write_json, cache_dir, cache_lock, compute_once, read_sealed_json
from .runinfo import utc_now, versions
from .traits import builtin_names, resolve_batteries

if TYPE_CHECKING:
    from .generate import GenerateConfig

HERE = Path(__file__).resolve().parent / "calibration"
DECOYS = HERE / "decoys"
#: The decoy teachers' chat sets (``decoys/<name>.jsonl``).
DECOY_NAMES = ("pirate", "one_word", "french")
#: The first prompt seed of the null draws (no example or benchmark dataset uses seeds from 300 up).
FIRST_SEED = 300
#: The decoys' prompt seeds start here.
DECOY_SEED = 400


@dataclass
class CalibrateConfig:
    """Settings of ``subaudit calibrate``.

    Attributes:
        base: the base to calibrate (``None`` = embedded default).
        format: ``numbers``, ``code`` or ``chat``: the prompts the null and decoy datasets answer.
        draws: K, the null pairs (at least 4; more pin the noise down better).
        decoys: the decoy teachers (names in ``decoys/``; empty: no generic direction, so no trait naming).
        rows: prompts generated per dataset (filters may keep fewer); the students train on ``max_rows`` of them.
        max_rows, seeds, probe: the scan budget the profile calibrates (a scan must use the same).
        traits: batteries to score (default: every built-in one, so any subset can be calibrated).
        seed: the first null draw's prompt seed.
        out: also write the profile to this file.
        work_dir: where datasets, teachers and students are kept (default: in the cache, per base).
        device, precision, trust_remote_code, allow_pickle, chat_template: as for ``scan`` (the template is used
            wherever the base is loaded: the null datasets, the decoy teachers, their data and the pairs' scans).
    """

    base: str | None = None
    format: str = "numbers"
    draws: int = 8
    decoys: tuple[str, ...] = DECOY_NAMES
    rows: int = 340
    max_rows: int | None = DEFAULT_MAX_ROWS
    seeds: int = 1
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    traits: list[str] | None = None
    seed: int = FIRST_SEED
    out: str | None = None
    work_dir: str | None = None
    device: str = "auto"
    precision: str = "auto"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    chat_template: str | None = None

    def validate(self) -> None:
        generate_format(self.format)  # the prompts the pairs' datasets answer: a format ``generate`` writes
        if self.draws < 4:
            raise InputError(f"--draws must be at least 4 (the noise model needs them), got {self.draws}")
        unknown = [d for d in self.decoys if not (DECOYS / f"{d}.jsonl").exists()]
        if unknown:
            raise InputError(f"--decoys: unknown decoy {unknown[0]!r} (known: {', '.join(DECOY_NAMES)})")

    def scan_config(self, data: str, run_dir: Path) -> ScanConfig:
        """The scan every pair runs: the calibrated budget, no null arm, no profile."""
        return ScanConfig(
            data=data,
            base=self.base,
            traits=list(self.traits or builtin_names()),
            seeds=self.seeds,
            max_rows=self.max_rows,
            min_rows=1,  # a profile measures the noise at the budget it is asked for; --min-rows guards verdicts
            method="probe",
            probe=self.probe,
            null_arm=False,
            calibration="none",
            device=self.device,
            precision=self.precision,
            trust_remote_code=self.trust_remote_code,
            allow_pickle=self.allow_pickle,
            chat_template=self.chat_template,
            run_dir=str(run_dir),
        )


Progress = Callable[[str], None]


def calibrate(config: CalibrateConfig, progress: Progress = lambda _m: None) -> NoiseProfile:
    """Build (or finish building: every finished pair is reused) the profile of ``config`` and save it."""
    from .models import LoadOptions, resolve_base

    config.validate()
    spec = resolve_base(config.base)
    options = LoadOptions(config.device, config.precision, config.trust_remote_code, config.allow_pickle)
    fingerprint = options.load(spec, chat_template=config.chat_template).fingerprint
    work = Path(config.work_dir) if config.work_dir else cache_dir() / "calibration" / fingerprint
    draws = [null_pair(config, work, config.seed + k, progress) for k in range(config.draws)]
    decoys = [decoy_pair(config, work, name, DECOY_SEED + j, progress) for j, name in enumerate(config.decoys)]
    first = read_sealed_json(pair_record(config, work, draws[0].name)) or {}
    base = {"requested": spec.requested, "location": spec.location, "fingerprint": fingerprint}
    notes = [f"device {first['device']}, training precision {first['train_precision']}"]
    profile = build_profile(config, base, first["options"], first["base"], draws, decoys, notes)
    save_profile(profile, cache_dir() / "profiles")
    if config.out:
        atomic_write_json(config.out, profile.to_json())
    return profile


def build_profile(
    config: CalibrateConfig,
    base: dict[str, str],
    options: list[str],
    base_shares: list[float],
    draws: list[ProfileDraw],
    decoys: list[ProfileDraw],
    notes: list[str],
) -> NoiseProfile:
    """The profile of ``config``'s budget (format, probe, max rows, seeds, batteries) for ``base`` (requested,
    location, fingerprint) from its null and decoy pairs (``options``: their options in order)."""
    batteries = resolve_batteries(config.traits or builtin_names())
    return NoiseProfile(
        key=profile_key(base["fingerprint"], config.format, config.probe, config.max_rows, config.seeds),
        base=base,
        format=config.format,
        budget={"max_rows": config.max_rows, "seeds": config.seeds},
        probe=config.probe.to_dict(),
        batteries={b.name: battery_hash(b) for b in batteries},
        options=options,
        base_shares=base_shares,
        draws=draws,
        decoys=decoys,
        created=utc_now(),
        versions=versions(),
        notes=notes,
    )


def save_profile(profile: NoiseProfile, folder: Path) -> Path:
    """Write ``profile`` as ``folder/<key>.json`` (where :func:`~auditor.calibration.lookup.find_profile` looks)."""
    path = folder / f"{profile.key}.json"
    atomic_write_json(path, profile.to_json())
    return path


def null_pair(config: CalibrateConfig, work: Path, seed: int, progress: Progress) -> ProfileDraw:
    """A dataset the base writes for the format's prompts (seed ``seed``), scanned: the students' shares."""
    from .generate import GenerateConfig

    data = work / "data" / f"null-{seed}.jsonl"
    gen = GenerateConfig(
        out=str(data),
        teacher=config.base,
        chat_template=config.chat_template,
        format=config.format,
        rows=config.rows,
        seed=seed,
    )
    return scan_pair(config, work, f"null-{seed}", seed, gen, progress)


def decoy_pair(config: CalibrateConfig, work: Path, name: str, seed: int, progress: Progress) -> ProfileDraw:
    """A dataset the decoy teacher ``name`` writes (it is trained first when it is not in ``work``), scanned."""
    from .generate import GenerateConfig
    from .teacher import TeacherConfig, train_teacher

    teacher = work / "teachers" / name
    with cache_lock(teacher):  # another calibrate of this base waits for the teacher, then uses it
        if not (teacher / "teacher.json").exists():
            progress(f"training decoy teacher {name}")
            if teacher.exists():  # an interrupted earlier attempt
                for f in teacher.iterdir():
                    f.unlink()
            train_teacher(
                TeacherConfig(
                    chat=str(DECOYS / f"{name}.jsonl"),
                    out=str(teacher),
                    base=config.base,
                    traits=["animal"],
                    device=config.device,
                    precision=config.precision,
                    trust_remote_code=config.trust_remote_code,
                    allow_pickle=config.allow_pickle,
                    chat_template=config.chat_template,
                )
            )
    data = work / "data" / f"decoy-{name}.jsonl"
    gen = GenerateConfig(
        out=str(data),
        teacher=config.base,
        chat_template=config.chat_template,
        adapter=str(teacher),
        format=config.format,
        rows=config.rows,
        seed=seed,
    )
    return scan_pair(config, work, name, seed, gen, progress)


def pair_record(config: CalibrateConfig, work: Path, name: str) -> Path:
    """Where a finished pair's shares are kept (per students' settings and budget)."""
    budget = profile_key("-", config.format, config.probe, config.max_rows, config.seeds)
    return work / "budgets" / budget / "pairs" / f"{name}.json"


def scan_pair(
    config: CalibrateConfig, work: Path, name: str, seed: int, gen: GenerateConfig, progress: Progress
) -> ProfileDraw:
    """Generate the pair's dataset (once), scan it without a null arm, keep the students' shares: a resumable
    cache entry (:func:`~auditor.io.compute_once`), so a second calibrate of the same base and budget waits for the
    pair and then reads it."""
    scan = partial(_scan_pair, config, work, name, seed, gen, progress)
    draw, _ = compute_once(pair_record(config, work, name), scan, _pair_draw)
    return draw


def _pair_draw(record: dict[str, Any]) -> ProfileDraw:
    """The draw of a pair's record (:class:`~auditor.io.Damaged` when it lacks a field)."""
    missing = [k for k in ("draw", "options", "base", "device", "train_precision") if k not in record]
    if missing:
        raise Damaged(f"no {missing[0]!r}")
    return ProfileDraw(**record["draw"])


def _scan_pair(
    config: CalibrateConfig, work: Path, name: str, seed: int, gen: GenerateConfig, progress: Progress
) -> dict[str, Any]:
    """The pair's record: its draw (the students' shares, open-vocabulary lifts), options, base shares, device."""
    from .discover import pair_lifts
    from .generate import generate
    from .pipeline import scan

    data = Path(gen.out)
    if not data.exists():
        progress(f"{name}: writing {gen.rows} rows")
        data.parent.mkdir(parents=True, exist_ok=True)
        generate(gen)
    progress(f"{name}: training and scoring the students")
    run_dir = pair_record(config, work, name).parent.parent / "runs" / name
    result = scan(config.scan_config(str(data), run_dir), config_file=False)
    findings = sorted(result.findings, key=lambda f: (f.shift.battery, f.shift.option))
    found = getattr(result.details, "discover", None)
    draw = ProfileDraw(
        name=name,
        seed=seed,
        rows=result.dataset.rows_used,
        dataset=[f.shift.dataset for f in findings],
        control=[f.shift.control for f in findings],
        words=pair_lifts(found) if found is not None and found.words_tested else None,
    )
    return {
        "draw": draw.__dict__,
        "options": [f.name for f in findings],
        "base": [f.shift.base for f in findings],
        "device": result.base.device,
        "train_precision": result.base.train_autocast or result.base.dtype,
    }


__all__ = ["CalibrateConfig", "build_profile", "calibrate", "decoy_pair", "null_pair", "save_profile"]
