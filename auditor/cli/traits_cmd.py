"""``subaudit traits``: list, show and validate trait batteries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from .common import call, fail, out, traits_app

if TYPE_CHECKING:
    from ..traits import Battery


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
    from ..traits import get_battery

    b = call(get_battery, name)
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
    from ..errors import SubauditError
    from ..traits import load_battery_file

    try:
        b = load_battery_file(path)
    except SubauditError as exc:
        fail(exc)
    if b.kind == "choice":
        detail = f"{b.n_answers} answers, trait label '{b.trait_label}', labels {', '.join(b.options)}"
    else:
        detail = f"{len(b.options)} options"
    out.print(f"ok: {b.name} ({b.kind}), {len(b.questions)} questions, {detail}", highlight=False, markup=False)
