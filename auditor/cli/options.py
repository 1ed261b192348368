"""Option groups several commands share, declared once so that their help never drifts apart."""

from __future__ import annotations

from typing import Annotated

import typer

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
ChatTemplateOpt = Annotated[
    str | None,
    typer.Option(
        help="A Jinja chat template file, or a shipped one's name (llama3, gemma), for a base whose tokenizer ships "
        "none (pretrained bases often do not: Llama 3 bases, Gemma GGUFs); it replaces the model's own and enters "
        "its fingerprint.",
        show_default=False,
    ),
]

# The students' options (scan, calibrate; teacher shares the LoRA shape).
ProbeKindOpt = Annotated[
    str,
    typer.Option("--probe", help="Students: lora (an adapter; default) or full (every weight; small bases only)."),
]
RankOpt = Annotated[int, typer.Option(help="LoRA rank.")]
AlphaOpt = Annotated[int, typer.Option(help="LoRA alpha.")]
ProbeLrOpt = Annotated[float | None, typer.Option(help="Peak learning rate (default: 1e-3 for lora, 3e-5 for full).")]
BatchSizeOpt = Annotated[int, typer.Option(help="Rows per optimiser step.")]
