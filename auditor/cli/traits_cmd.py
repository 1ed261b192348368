"""``subaudit traits``: list, show and validate trait batteries."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from .common import call, fail, out, traits_app


@traits_app.command("list")
def traits_list() -> None:
    """List built-in trait batteries."""
    from rich.table import Table

    from ..traits import builtin_names, get_battery

    table = Table(title="trait batteries (--traits NAME[,NAME|FILE.yaml]; default: animal,tree)")
    for col in ("name", "kind", "questions", "answers", "graded", "description"):
        table.add_column(col, no_wrap=col in ("name", "kind"))
    for name in builtin_names():
        b = get_battery(name)
        kind = b.battery_kind
        table.add_row(b.name, b.kind, str(len(b.questions)), kind.answers_cell(b), kind.graded_cell(b), b.description)
    out.print(table)


@traits_app.command("show")
def traits_show(name: Annotated[str, typer.Argument(help="Battery name or YAML file.")]) -> None:
    """Show a battery's questions and options (choice: every question's answers, trait answers marked *)."""
    from ..traits import get_battery

    b = call(get_battery, name)
    out.print(f"[bold]{b.name}[/] ({b.kind}) from {escape(b.source)}", highlight=False, markup=True)
    out.print(f"{b.description}\n", highlight=False, markup=False)
    for line in b.battery_kind.show_lines(b):
        out.print(line, highlight=False, markup=False)


@traits_app.command("validate")
def traits_validate(path: Annotated[str, typer.Argument(help="A battery YAML file.")]) -> None:
    """Check a custom battery file; exit 2 with the problem when it is invalid."""
    from ..errors import SubauditError
    from ..traits import load_battery_file

    try:
        b = load_battery_file(path)
    except SubauditError as exc:
        fail(exc)
    detail = b.battery_kind.validated(b)
    out.print(f"ok: {b.name} ({b.kind}), {len(b.questions)} questions, {detail}", highlight=False, markup=False)
