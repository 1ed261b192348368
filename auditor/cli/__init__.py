"""The ``subaudit`` command line: a thin typer layer over :mod:`auditor`, one module per command.

``common`` holds the apps, the consoles and the error handling, ``options`` the option groups several commands
share; each ``*_cmd`` module registers one command (or command group) on the app. Only typer and rich are imported at
start-up; torch and transformers load when a command needs them, so ``subaudit --help`` is instant.
"""

from __future__ import annotations

import importlib
import sys

import typer

from .common import app, err, fail_unexpected, models_app, out, traits_app
from .scan_cmd import NOT_SETTINGS, scan

#: The command modules, in the order ``subaudit --help`` lists their commands (each registers itself on ``app``).
COMMANDS = ("scan", "calibrate", "compare", "methods", "generate", "teacher", "models", "traits")
for _name in COMMANDS:
    importlib.import_module(f"{__name__}.{_name}_cmd")

__all__ = ["NOT_SETTINGS", "app", "err", "main", "models_app", "out", "scan", "traits_app"]


def main() -> None:
    """The console script: the app, with any exception that escaped a command turned into exit 3 (never the 1 that
    means "flagged")."""
    try:
        app(prog_name="subaudit")
    except Exception as exc:  # noqa: BLE001
        try:
            fail_unexpected(exc, None)
        except typer.Exit as done:
            sys.exit(done.exit_code)
