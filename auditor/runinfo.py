"""Run metadata every result records: library versions, the time, the command line."""

from __future__ import annotations

import platform
import shlex
import sys
from datetime import datetime, timezone

from ._version import __version__

#: Libraries whose versions decide results.
VERSIONED = ("torch", "transformers", "peft", "numpy", "scipy")


def versions() -> dict[str, str]:
    """Versions of subaudit, Python and the libraries that decide results."""
    out = {"subaudit": __version__, "python": platform.python_version()}
    for mod in VERSIONED:
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - missing optional module
            out[mod] = "missing"
    return out


def utc_now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def command_line() -> str:
    """The ``subaudit`` command this process runs, quoted so it can be pasted back into a shell."""
    return "subaudit " + " ".join(shlex.quote(a) for a in sys.argv[1:])
