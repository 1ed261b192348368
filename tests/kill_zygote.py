"""A zygote for the kill harness (``tests/test_kill.py``): one process that imports torch, transformers and subaudit
once, then forks one ``subaudit`` command line per request, so each trial's process starts in milliseconds
instead of seconds. The child is a real, separate process: the test kills it with SIGKILL.

Protocol (one JSON object per line on stdin, one line per event on stdout):
``{"argv": [...], "cache": DIR, "log": FILE}`` -> ``pid PID`` when the child started, then ``exit CODE`` when it ended
(``-9`` for SIGKILL). The child's stdout and stderr go to ``log``; ``$SUBAUDIT_CACHE`` is ``cache``.
Nothing is computed in the zygote itself, so no memo of one child leaks into the next.
"""

from __future__ import annotations

import json
import os
import sys


def preload() -> None:
    """Import what a tiny scan imports (the slow part of starting one)."""
    import numpy  # noqa: F401
    import peft  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers.models.llama import modeling_llama  # noqa: F401

    import auditor.cli  # noqa: F401
    import auditor.methods.probe  # noqa: F401
    import auditor.pipeline  # noqa: F401
    import auditor.report  # noqa: F401


def run_child(argv: list[str], cache: str, log: str) -> None:
    """In the forked child: run ``subaudit argv`` with its output in ``log``, and exit with its code."""
    code = 3
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ["SUBAUDIT_CACHE"] = cache
        sys.argv = ["subaudit", *argv]
        from auditor.cli import main

        try:
            main()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 3
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    preload()
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(request["argv"], request["cache"], request["log"])
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    serve()
