"""``auditor.scan``: the whole audit as one function call, for every detection method.

settings (``config`` over a config file, :mod:`auditor.settings`) -> prepare (data, batteries, base) -> run folder ->
control rows -> the method (``config.method``) -> result -> the files asked for (:func:`auditor.outputs.write_outputs`).
Every finished stage is written to the run folder, so rerunning the same scan resumes.
"""

from __future__ import annotations

import time
from pathlib import Path

from .config import ScanConfig
from .data import Example
from .distributed import processes
from .errors import Interrupted, mark_stage
from .finetune import encode_row
from .inputs import ScanInputs, Timings
from .methods import get_method
from .outputs import Outputs, write_outputs
from .prepare import draw_controls, open_run, prepare_inputs
from .progress import Reporter
from .result import FirstRow, ScanResult
from .rundir import RunFolder
from .runinfo import utc_now
from .settings import resolve


def scan(
    config: ScanConfig,
    reporter: Reporter | None = None,
    command: str | None = None,
    *,
    config_file: str | Path | bool | None = None,
    outputs: Outputs | None = None,
) -> ScanResult:
    """Run the whole audit as ``subaudit scan`` does and return a :class:`~auditor.result.ScanResult`.

    Settings: ``config``'s fields over a config file's (``subaudit.toml`` or ``[tool.subaudit]`` found from the
    working directory up; ``config_file`` names one, ``False`` reads none): a field you set to anything but its
    default wins, the file fills the rest (:mod:`auditor.settings`). Files: those ``outputs`` or the config file ask
    for (report, JSON, JUnit, SARIF, PR comment, plots beside the report, the GitHub step summary), written as the
    CLI writes them; with neither, only the run dir.
    """
    settings = resolve(config, outputs, config_file)
    result = run_scan(settings.config, reporter, command)
    if settings.outputs is not None and processes().is_main:
        try:
            write_outputs(result, settings.outputs)
        except Exception as exc:
            mark_stage(exc, "report", result.run_dir)
            raise
    return result


def run_scan(config: ScanConfig, reporter: Reporter | None = None, command: str | None = None) -> ScanResult:
    """The audit of ``config`` as it is (no config file, no output files; the run dir only).

    The run dir's ``manifest.json`` is written as soon as the run dir is known (status ``running``) and
    updated at the end (``finished``), on Ctrl-C (``interrupted``; raised as :class:`Interrupted`, which
    names the run dir) or on an error (``failed``). Rerunning the same scan resumes from its stages.
    """
    start = time.perf_counter()
    timings = Timings()
    try:
        inputs = prepare_inputs(config, reporter, timings)
        with timings.stage("run_folder"):
            run = open_run(inputs, command or f"auditor.scan({config.data!r}, ...)")
    except Exception as exc:
        mark_stage(exc, timings.current or "setup", None)
        raise
    try:
        result = _run_method(inputs, run, start)
    except BaseException as exc:
        run.stop(exc)
        mark_stage(exc, timings.current or config.method, str(run.path))
        if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted):
            raise Interrupted(str(run.path)) from None
        raise
    run.finish(dataset=result.dataset.to_dict(), verdict=result.verdict.level)
    return result


def _run_method(inputs: ScanInputs, run: RunFolder, start: float) -> ScanResult:
    """Controls, then the method, then the result."""
    method = get_method(inputs.config.method)
    controls = draw_controls(inputs)
    outcome = method.run(inputs, run, controls)
    pairs = controls.pairs(inputs.dataset) if controls is not None else None
    return ScanResult(
        config=inputs.config,
        method=method.name,
        verdict=outcome.verdict,
        findings=outcome.findings,
        dataset=inputs.dataset.info(rows_used=outcome.rows_used),
        base=inputs.loaded.info(),
        control=None if controls is None else controls.info(),
        batteries=inputs.batteries,
        details=outcome.details,
        timings={**inputs.timings.rounded(), "total": round(time.perf_counter() - start, 2)},
        versions=run.manifest["versions"],
        run_dir=str(run.path),
        command=run.manifest["command"],
        created=utc_now(),
        first_row=first_row(inputs, pairs.data[0] if pairs else inputs.dataset.examples[0]),
        budget=inputs.budget,
    )


def first_row(inputs: ScanInputs, row: Example) -> FirstRow:
    """The first training row as the student sees it: its tokens (truncated as the method truncates) and the
    tokens that carry loss."""
    limit = get_method(inputs.config.method).training_length(inputs.settings)
    ids, labels = encode_row(inputs.loaded.tokenizer, row, limit)
    return FirstRow(
        prompt=list(row.prompt),
        completion=row.completion,
        tokens=len(ids),
        loss_tokens=sum(1 for x in labels if x != -100),
    )
