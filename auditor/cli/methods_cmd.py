"""``subaudit methods``: the detection methods and their settings."""

from __future__ import annotations

from typing import Any

from .common import app, out


@app.command("methods")
def methods_list() -> None:
    """List the detection methods (--method) and their settings (--method-arg KEY=VALUE)."""
    import dataclasses

    from rich.table import Table

    from ..config import DEFAULT_METHOD
    from ..methods import get_method, method_names

    table = Table(title="detection methods (--method NAME; settings: --method-arg KEY=VALUE)")
    for col in ("method", "what it does", "unit", "gate", "settings (default)"):
        table.add_column(col)
    for name in method_names():
        m = get_method(name)
        settings = ", ".join(f"{f.name}={_default(f)}" for f in dataclasses.fields(m.settings)) or "-"
        shown = f"{name} (default)" if name == DEFAULT_METHOD else name
        table.add_row(shown, m.summary, m.unit, "yes" if m.gate else "no: finds rows", settings)
    out.print(table)


def _default(field: Any) -> object:
    """A setting's default as the table shows it: its value, or ``ProbeConfig()`` for a dataclass built by its
    factory (the students' settings: ``--rank``, ``--alpha`` ...)."""
    import dataclasses

    if field.default is not dataclasses.MISSING:
        return field.default
    value = field.default_factory()
    return f"{type(value).__name__}()" if dataclasses.is_dataclass(value) else value
