"""``subaudit generate``: a teacher dataset with known ground truth."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import app, call, err, out
from .options import AllowPickleOpt, ChatTemplateOpt, DeviceOpt, PrecisionOpt, TrustRemoteCodeOpt


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
    chat_template: ChatTemplateOpt = None,
) -> None:
    """Write a teacher dataset with known ground truth (numbers, code or reasoning), filtered as the paper did."""
    from ..generate import GenerateConfig
    from ..generate import generate as run_generate

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
        result = call(run_generate, config, progress=lambda done, total: err.print(f"[dim]{done}/{total} answered[/]"))
    except KeyboardInterrupt:
        err.print("[bold red]interrupted:[/] finished chunks are cached; run the same command again to resume.")
        raise typer.Exit(130) from None
    dropped = ", ".join(f"{k} {v}" for k, v in result.dropped.items() if v) or "none"
    out.print(
        f"wrote {result.rows} rows of {result.generated} to {result.out} (dropped: {dropped}; {result.drawn()}); "
        f"manifest {result.manifest}; {result.seconds:.0f} s",
        highlight=False,
        markup=False,
    )
