"""The one setup every scan (and its dry run) goes through, whatever the method.

:func:`prepare_inputs` validates the settings, reads the data, resolves the batteries, loads the base and returns
the :class:`~auditor.inputs.ScanInputs` (immutable; ``--budget`` makes new ones); :func:`open_run` keys and opens the
run folder; :func:`draw_controls` samples (or reads) the control rows the method asked for.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from .config import ScanConfig
from .control import build_control
from .distributed import processes
from .errors import InputError
from .inputs import NULL_SEED_OFFSET, Controls, ScanInputs, Timings
from .likelihood import check_decoding
from .methods import Method, get_method
from .models import resolve_base
from .progress import Reporter
from .row_floor import check_rows
from .row_shape import compare_rows
from .rundir import RunFolder, run_key
from .runinfo import versions
from .sources import load_data
from .traits import resolve_batteries


def prepare_inputs(config: ScanConfig, reporter: Reporter | None = None, timings: Timings | None = None) -> ScanInputs:
    """Validate ``config`` and the method's settings, read the data, resolve the batteries, load the base (and the
    method's judge), find the method's calibration profile, and plan ``--budget``."""
    rep = reporter or Reporter()
    timings = timings if timings is not None else Timings()
    started = time.perf_counter()
    config.validate()
    method = get_method(config.method)
    config = replace(config, control_sampling=config.control_sampling.with_defaults(**method.control_defaults))
    settings = method.parse_settings(config.method_args)
    with timings.stage("data"):
        dataset = read_data(config)
        check_rows(config, len(dataset))
        batteries = resolve_batteries(config.traits)
        method.validate(config, settings, batteries)
        spec = resolve_base(config.base, config.revision)
    with timings.stage("load_base"):
        rep.note(f"loading base {spec.display}")
        loaded = config.load_options().load(spec, chat_template=config.chat_template, adapter=config.adapter)
        judge = method.load_judge(config, settings, rep)
    inputs = ScanInputs(config, settings, dataset, batteries, spec, loaded, judge, rep, timings)
    with timings.stage("load_base"):
        inputs = replace(inputs, profile=method.find_profile(inputs))
    if config.budget is not None:
        with timings.stage("budget"):
            inputs = apply_budget(method, inputs, started)
    with timings.stage("load_base"):
        method.check(inputs)
    return inputs


def read_data(config: ScanConfig) -> Any:
    """The dataset's rows as ``config`` samples them."""
    return load_data(
        config.data,
        max_rows=config.max_rows,
        seed=config.seed,
        split=config.split,
        subset=config.subset,
        revision=config.data_revision,
    )


#: Seconds a budget keeps aside for what the plan does not count (writing outputs, loading between stages).
BUDGET_SLACK_S = 10.0


def apply_budget(method: Method, inputs: ScanInputs, started: float) -> ScanInputs:
    """``--budget``: choose rows and the method's repeats from throughput measured on this base
    (:mod:`auditor.budget`); returns new inputs with them (data re-read, settings validated again, the profile
    looked up again)."""
    from .budget import Measurements, parse_duration, plan_budget

    requested = parse_duration(str(inputs.config.budget))
    measured = Measurements(inputs)
    for measure in (measured.generation_per_row, measured.train_step, measured.score_question):
        measure()  # measured first, so the time they take is counted against the budget
    left = requested - (time.perf_counter() - started) - BUDGET_SLACK_S
    plan = replace(plan_budget(method, inputs, measured, left, inputs.dataset.total_rows), requested_s=requested)
    config = replace(inputs.config, max_rows=plan.rows)
    if method.repeats:
        config = replace(config, method_args={**config.method_args, method.repeats: plan.seeds})
    settings = method.with_repeats(inputs.settings, plan.seeds)
    method.validate(config, settings, inputs.batteries)
    dataset = read_data(config)
    check_rows(config, len(dataset))
    planned = replace(inputs, config=config, settings=settings, dataset=dataset, budget=plan)
    inputs.reporter.note(plan.line())
    return replace(planned, profile=method.find_profile(planned))


def scan_key(inputs: ScanInputs) -> str:
    """The run folder's key: the shared inputs and the method's part (:meth:`Method.key`)."""
    config, loaded = inputs.config, inputs.loaded
    parts: dict[str, Any] = {
        "method": config.method,
        "data": inputs.dataset.sha256,
        "rows": [e.line for e in inputs.dataset.examples],
        "model": loaded.fingerprint,
        "control": config.control,
        "control_sampling": None if config.control else config.control_sampling.key(),
        "seed": config.seed,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "autocast": loaded.autocast_dtype,
        "train_autocast": loaded.train_autocast_dtype,
        "batteries": [b.content_key() for b in inputs.batteries],
        **get_method(config.method).key(inputs),
    }
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
        seeds=get_method(config.method).seeds(inputs),
    )
    return run


def draw_controls(inputs: ScanInputs) -> Controls | None:
    """The control rows the method asked for: the control (``--control`` file or the base's own answers) and, for a
    second draw, the null arm (the method's file, or the base's answers with ``seed + NULL_SEED_OFFSET``)."""
    config, dataset, rep = inputs.config, inputs.dataset, inputs.reporter
    method = get_method(config.method)
    draws = method.control_draws(inputs)
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
                    control_file=method.second_draw_file(inputs),
                    sampling=config.control_sampling,
                    progress=lambda n, _t: advance(n),
                )
    pairs = Controls(control, null, config.seed).pairs(dataset)
    if not len(pairs):
        raise InputError(f"{config.data}: no dataset row has a usable control row")
    check_rows(config, len(pairs), f"of {len(dataset)} sampled rows have a usable control row")
    with inputs.timings.stage("control"), rep.stage("decoding check", total=1) as advance:
        approximate = control.how.approximate_share if control.how is not None else 0.0
        decoding = check_decoding(inputs.loaded, pairs.data, pairs.control, pairs.null, approximate)
        advance(1)
    rows = compare_rows(dataset.completion_format, pairs.data, pairs.control)
    return Controls(control, null, config.seed, decoding, rows)
