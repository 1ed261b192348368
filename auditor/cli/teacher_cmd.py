"""``subaudit teacher``: fine-tune a base into a teacher with a trait."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import app, call, out
from .options import AllowPickleOpt, AlphaOpt, ChatTemplateOpt, DeviceOpt, PrecisionOpt, RankOpt, TrustRemoteCodeOpt


@app.command()
def teacher(
    chat: Annotated[str, typer.Argument(help="Chat set that expresses the trait (.jsonl/.csv/.parquet).")],
    out_dir: Annotated[str, typer.Option("--out", help="New folder for the adapter and teacher.json.")],
    base: Annotated[
        str | None, typer.Option(help="Base to fine-tune. Default: embedded SmolLM2-135M-Instruct.")
    ] = None,
    traits: Annotated[str, typer.Option(help="Batteries to score teacher vs base on (names or YAML).")] = "animal,tree",
    rank: RankOpt = 16,
    alpha: AlphaOpt = 32,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    epochs: Annotated[float, typer.Option(help="Epochs over the chat set.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Adapter init and row order.")] = 0,
    keep_format: Annotated[
        str | None,
        typer.Option(
            help="Rows the base wrote in the format the teacher's data will take (e.g. `subaudit generate` without "
            "--adapter), learnt with the chat set so the teacher keeps the format and its data can be drawn exactly."
        ),
    ] = None,
    keep_format_rows: Annotated[
        int | None, typer.Option(help="How many --keep-format rows (chosen with --seed). Default: all.")
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    trust_remote_code: TrustRemoteCodeOpt = False,
    allow_pickle: AllowPickleOpt = False,
    chat_template: ChatTemplateOpt = None,
) -> None:
    """Fine-tune a base into a teacher with a trait (LoRA) and score it against the base."""
    from rich.table import Table

    from ..teacher import TeacherConfig, train_teacher

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
        keep_format=keep_format,
        keep_format_rows=keep_format_rows,
        device=device,
        precision=precision,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
        chat_template=chat_template,
    )
    result = call(train_teacher, config)
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
        markup=False,
    )
