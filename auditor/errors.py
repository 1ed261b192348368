"""Errors that map onto the CLI's exit codes."""

from __future__ import annotations


class SubauditError(Exception):
    """Base class for errors subaudit reports without a traceback."""

    exit_code = 3


class InputError(SubauditError):
    """Bad usage or bad input (exit code 2). The message names file, line and field."""

    exit_code = 2


class ModelLoadError(SubauditError):
    """The base model could not be found or loaded (exit code 3)."""

    exit_code = 3


class RuntimeFailure(SubauditError):
    """A stage failed while running (exit code 3)."""

    exit_code = 3


def mark_stage(exc: BaseException, stage: str | None, run_dir: str | None) -> None:
    """Remember where an unexpected exception happened (the CLI names the stage and keeps a log in ``run_dir``)."""
    if getattr(exc, "subaudit_stage", None) is None:
        exc.subaudit_stage = stage  # type: ignore[attr-defined]
        exc.subaudit_run_dir = run_dir  # type: ignore[attr-defined]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a scan; ``run_dir`` keeps every stage finished so far (rerun the scan to resume)."""

    def __init__(self, run_dir: str):
        super().__init__(run_dir)
        self.run_dir = run_dir
