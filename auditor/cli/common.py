"""The typer apps, the two consoles, ``--version``, and how a library error becomes one line and an exit code."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

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
        from .._version import __version__

        out.print(f"subaudit {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Audit a synthetic dataset for hidden traits a student model would pick up (subliminal learning)."""


def call(fn: Any, *args: Any, stage: str | None = None, run_dir: str | None = None, **kwargs: Any) -> Any:
    """Run a library function. A subaudit error becomes one clear line and its exit code; any other exception
    becomes one line naming the stage and a log file with the traceback, and exit code 3 (never 1, which means
    "flagged")."""
    from ..errors import SubauditError

    try:
        return fn(*args, **kwargs)
    except SubauditError as exc:
        fail(exc)
    except Exception as exc:  # noqa: BLE001 - every unexpected failure must exit 3, not look like a verdict
        fail_unexpected(exc, stage, run_dir)


def fail_unexpected(exc: Exception, stage: str | None, run_dir: str | None = None) -> None:
    """One line (the stage, the exception, the log file) and exit 3; the traceback goes to the log file, in the
    run folder when the scan had one."""
    import traceback
    from datetime import datetime, timezone
    from pathlib import Path

    from ..io import atomic_write_text, cache_dir

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


def fail(exc: Exception) -> None:
    from ..errors import SubauditError

    code = exc.exit_code if isinstance(exc, SubauditError) else 3
    label = "error" if code == 2 else "failed"
    # the message quotes paths and dataset text: escaped, so '[...]' in it is shown, never read as markup
    err.print(f"[bold red]{label}:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)
