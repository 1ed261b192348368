"""``subaudit compare``: what changed between two scans."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import app, call, fail, out


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

    from ..compare import compare_results, load_result
    from ..errors import InputError
    from ..io import atomic_write_json
    from ..verdict import LEVELS

    if fail_on not in LEVELS[1:]:
        fail(InputError(f"--fail-on must be one of {', '.join(LEVELS[1:])}, got {fail_on!r}"))
    result = call(lambda: compare_results(load_result(old), load_result(new), fail_on))
    for line in result.lines():
        out.print(line, highlight=False, markup=False)
    if json_out:
        blob = {**asdict(result), "worsened": result.worsened}
        call(atomic_write_json, json_out, blob, stage="report")
    raise typer.Exit(result.exit_code)
