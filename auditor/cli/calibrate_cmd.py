"""``subaudit calibrate``: measure a base's students on data that carries nothing (a calibration profile)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from .common import app, call, err, out
from .options import (
    AllowPickleOpt,
    AlphaOpt,
    BatchSizeOpt,
    ChatTemplateOpt,
    DeviceOpt,
    PrecisionOpt,
    ProbeKindOpt,
    ProbeLrOpt,
    RankOpt,
    TrustRemoteCodeOpt,
)


@app.command()
def calibrate(
    base: Annotated[
        str | None, typer.Option(help="Base to calibrate (as scan's --base). Default: embedded SmolLM2-135M-Instruct.")
    ] = None,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="A format `subaudit generate` writes (numbers, code, reasoning, chat): the prompts the calibration "
            "data answers.",
        ),
    ] = "numbers",
    draws: Annotated[int, typer.Option(help="Null pairs: datasets the base writes, each scanned (at least 4).")] = 8,
    decoys: Annotated[
        str, typer.Option(help="Decoy teachers, comma-separated (pirate, one_word, french); empty for none.")
    ] = "pirate,one_word,french",
    max_rows: Annotated[int, typer.Option(help="The scan budget to calibrate: rows per student.")] = 200,
    seeds: Annotated[int, typer.Option(help="The scan budget to calibrate: paired seeds.")] = 1,
    probe_kind: ProbeKindOpt = "lora",
    rank: RankOpt = 8,
    alpha: AlphaOpt = 16,
    lr: ProbeLrOpt = None,
    batch_size: BatchSizeOpt = 8,
    traits: Annotated[str | None, typer.Option(help="Batteries to calibrate (default: every built-in one).")] = None,
    out_file: Annotated[str | None, typer.Option("--out", help="Also write the profile to this file.")] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    trust_remote_code: TrustRemoteCodeOpt = False,
    allow_pickle: AllowPickleOpt = False,
    chat_template: ChatTemplateOpt = None,
) -> None:
    """Measure how the base's students move on data that carries nothing (and on decoy teachers' data), for scans
    at this budget: a calibration profile, cached and used by `scan --calibration auto`. Resumes where it stopped."""
    from ..calibration.build import CalibrateConfig
    from ..calibration.build import calibrate as run_calibrate
    from ..finetune import ProbeConfig

    probe = ProbeConfig(
        kind=probe_kind,
        rank=rank,
        alpha=alpha,
        learning_rate=lr,  # None: the kind's default (ProbeConfig)
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
        chat_template=chat_template,
    )
    try:
        profile = call(run_calibrate, config, lambda m: err.print(f"[dim]{escape(m)}[/]", highlight=False))
    except KeyboardInterrupt:
        err.print("[bold red]interrupted:[/] finished pairs are kept; run the same command again to resume.")
        raise typer.Exit(130) from None
    out.print(
        f"profile {profile.key}: {len(profile.draws)} null pairs, {len(profile.decoys)} decoys, "
        f"{len(profile.options)} options; {profile.noise().describe()}",
        highlight=False,
        markup=False,
    )
    out.print(  # the default method (gradient) uses no profile
        "scans that use it: subaudit scan DATA --method probe, with this base, format and budget",
        highlight=False,
        markup=False,
    )
