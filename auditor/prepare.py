"""The one setup every scan (and its dry run) goes through, whatever the method.

:func:`prepare_inputs` validates the settings, reads the data, resolves the batteries and loads the base;
:func:`open_run` keys and opens the run folder; :func:`draw_controls` samples (or reads) the control rows the
method asked for.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from .config import ScanConfig
from .control import build_control
from .distributed import processes
from .errors import InputError, SubauditError
from .inputs import NULL_SEED_OFFSET, Controls, ScanInputs, Timings
from .likelihood import check_decoding
from .methods import get_method
from .models import LoadedModel, resolve_base
from .progress import Reporter
from .rundir import RunFolder, run_key
from .runinfo import versions
from .sources import load_data
from .traits import resolve_batteries

if TYPE_CHECKING:
    from .calibration.profile import NoiseProfile


def prepare_inputs(config: ScanConfig, reporter: Reporter | None = None, timings: Timings | None = None) -> ScanInputs:
    """Validate ``config``, read the data, resolve the batteries, load the base (and a judge)."""
    rep = reporter or Reporter()
    timings = timings if timings is not None else Timings()
    started = time.perf_counter()
    config.validate()
    method = get_method(config.method)
    settings = method.parse_settings(config.method_args)
    with timings.stage("data"):
        dataset = load_data(
            config.data,
            max_rows=config.max_rows,
            seed=config.seed,
            split=config.split,
            subset=config.subset,
            revision=config.data_revision,
        )
        batteries = resolve_batteries(config.traits)
        method.validate(config, settings, batteries)
        spec = resolve_base(config.base, config.revision)
    with timings.stage("load_base"):
        rep.note(f"loading base {spec.display}")
        loaded = config.load_options().load(spec, adapter=config.adapter)
        judge = load_judge(config, rep)
    inputs = ScanInputs(
        config=config,
        settings=settings,
        dataset=dataset,
        batteries=batteries,
        spec=spec,
        loaded=loaded,
        judge=judge,
        reporter=rep,
        timings=timings,
    )
    with timings.stage("load_base"):
        if method.uses_profile:
            inputs.profile = find_scan_profile(inputs)
    if config.budget is not None:
        with timings.stage("budget"):
            apply_budget(inputs, started)
    with timings.stage("load_base"):
        method.check(inputs)
    return inputs


#: Seconds a budget keeps aside for what the plan does not count (writing outputs, loading between stages).
BUDGET_SLACK_S = 10.0


def apply_budget(inputs: ScanInputs, started: float) -> None:
    """``--budget``: choose rows and seeds from throughput measured on this base (:mod:`auditor.budget`), then
    re-read the data with them and look the profile up again."""
    from .budget import Measurements, parse_duration, plan_budget

    config = inputs.config
    requested = parse_duration(str(config.budget))
    measured = Measurements(inputs)
    for measure in (measured.generation_per_row, measured.train_step, measured.score_question):
        measure()  # measured first, so the time they take is counted against the budget
    left = requested - (time.perf_counter() - started) - BUDGET_SLACK_S
    plan = plan_budget(inputs, measured, left, inputs.dataset.total_rows)
    plan.requested_s = requested
    config = replace(config, max_rows=plan.rows, seeds=plan.seeds)
    inputs.config = config
    inputs.dataset = load_data(
        config.data, config.max_rows, config.seed, config.split, config.subset, config.data_revision
    )
    inputs.profile = find_scan_profile(inputs) if get_method(config.method).uses_profile else None
    inputs.budget = plan
    inputs.reporter.note(plan.line())


def find_scan_profile(inputs: ScanInputs) -> NoiseProfile | None:
    """The calibration profile for this scan (see :func:`auditor.calibration.find_profile`), if it covers every
    battery scanned; otherwise ``None`` (a profile file that does not is refused)."""
    from .calibration.lookup import find_profile, matching_options

    config = inputs.config
    if config.null_arm or (config.control is not None and config.calibration == "auto"):
        return None  # an explicit null arm measures the noise itself; a control file's source is not the base's
    profile = find_profile(config, inputs.loaded, inputs.dataset)
    if profile is None:
        return None
    if config.scoring != "exact":
        if config.calibration != "auto":
            raise InputError("--calibration: a profile calibrates exact scoring; use --scoring exact")
        return None
    if matching_options(profile, inputs.batteries) is None:
        if config.calibration != "auto":
            names = ", ".join(sorted(profile.batteries))
            raise InputError(f"--calibration {config.calibration}: it calibrates the batteries {names} only")
        return None
    return profile


def load_judge(config: ScanConfig, reporter: Reporter) -> LoadedModel | None:
    """The judge model of a sampled scan (``None`` without ``--judge``), loaded like a base."""
    if config.scoring != "sampled" or config.judge is None:
        return None
    reporter.note(f"loading judge {config.judge}")
    try:
        return config.load_options().load(resolve_base(config.judge))
    except SubauditError as exc:
        exc.args = (f"judge: {str(exc).replace('--base', '--judge')}",)
        raise


def scan_key(inputs: ScanInputs) -> str:
    """The run folder's key: everything that decides the scan's stages."""
    config, loaded = inputs.config, inputs.loaded
    method = get_method(config.method)
    parts: dict[str, Any] = {
        "method": config.method,
        "data": inputs.dataset.sha256,
        "rows": [e.line for e in inputs.dataset.examples],
        "model": loaded.fingerprint,
        "control": config.control,
        "control_sampling": None if config.control else asdict(config.control_sampling),
        "probe": config.probe.to_dict(),
        "seed": config.seed,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "autocast": loaded.autocast_dtype,
        "train_autocast": loaded.train_autocast_dtype,
        "batteries": [b.content_key() for b in inputs.batteries],
        **method.key(config, inputs.settings),
    }
    if config.scoring != "exact":
        from .sampled_scoring import settings_key

        parts.update(
            scoring=config.scoring,
            samples=config.samples,
            judge=None if inputs.judge is None else [config.judge, inputs.judge.fingerprint],
            sampling=settings_key(),
        )
    return run_key(parts)


def open_run(inputs: ScanInputs, command: str) -> RunFolder:
    """Open the run folder and write its manifest (status ``running``)."""
    config, dataset = inputs.config, inputs.dataset
    with processes().main_first():
        run = RunFolder.open(scan_key(inputs), config.run_dir, config.resume, inputs.reporter)
    run.start(
        command=command,
        method=config.method,
        config=config.to_dict(),
        dataset=dataset.info().to_dict(),
        base=inputs.loaded.info().to_dict(),
        versions=versions(),
        seeds=inputs.seeds,
    )
    inputs.run = run
    return run


def draw_controls(inputs: ScanInputs) -> Controls | None:
    """The control rows the method asked for: the control (``--control`` file or the base's own answers) and, for a
    second draw, the null arm (``--null-control`` file, or the base's answers with ``seed + NULL_SEED_OFFSET``)."""
    config, dataset, rep = inputs.config, inputs.dataset, inputs.reporter
    draws = get_method(config.method).control_draws(inputs)
    if draws == 0:
        return None
    with inputs.timings.stage("control"), processes().main_first():  # the others read the main process's cache
        with rep.stage("control rows", total=len(dataset)) as advance:
            control = build_control(
                inputs.loaded,
                dataset,
                seed=config.seed,
                control_file=config.control,
                sampling=config.control_sampling,
                progress=lambda n, _t: advance(n),
            )
        null = None
        if draws > 1:
            with rep.stage("null-arm rows", total=len(dataset)) as advance:
                null = build_control(
                    inputs.loaded,
                    dataset,
                    seed=config.seed + NULL_SEED_OFFSET,
                    control_file=config.null_control,
                    sampling=config.control_sampling,
                    progress=lambda n, _t: advance(n),
                )
    controls = Controls(control, null, config.seed)
    pairs = controls.pairs(dataset)
    if not len(pairs):
        raise InputError(f"{config.data}: no dataset row has a usable control row")
    with inputs.timings.stage("control"), rep.stage("decoding check", total=1) as advance:
        controls.decoding = check_decoding(inputs.loaded, pairs.data, pairs.control, pairs.null)
        advance(1)
    inputs.controls = controls
    return controls
