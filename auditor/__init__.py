"""subaudit: does this synthetic dataset carry a hidden trait into the student you will train on it?

The Python API is the CLI without the parsing::

    import auditor
    result = auditor.scan(auditor.ScanConfig("data.jsonl", base="smollm2-135m"))
    print(result.verdict.summary())

``auditor.scan`` reads ``subaudit.toml`` as the CLI does and writes the files it names (:mod:`auditor.settings`).

Heavy libraries (torch, transformers, peft) are imported only when a scan runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

_LAZY = {
    "scan": "pipeline",
    "dry_run": "dryrun",
    "ScanConfig": "config",
    "ScanResult": "result",
    "ProbeConfig": "finetune",
    "register_method": "methods",
    "get_method": "methods",
    "Thresholds": "verdict",
    "Verdict": "verdict",
    "load_dataset": "data",
    "Dataset": "data",
    "Example": "data",
    "get_battery": "traits",
    "resolve_batteries": "traits",
    "builtin_names": "traits",
    "Battery": "traits",
    "resolve_base": "models",
    "load_base": "models",
    "fetch_default": "models",
    "ALIASES": "models",
    "to_json": "report",
    "to_markdown": "report",
    "write_json": "outputs",
    "write_outputs": "outputs",
    "Outputs": "outputs",
    "write_markdown": "report",
    "InputError": "errors",
    "ModelLoadError": "errors",
    "SubauditError": "errors",
}

#: Public names that differ from the module's own.
_RENAMED = {"register_method": "register"}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .config import ScanConfig  # noqa: F401
    from .data import Dataset, Example, load_dataset  # noqa: F401
    from .dryrun import dry_run  # noqa: F401
    from .errors import InputError, ModelLoadError, SubauditError  # noqa: F401
    from .finetune import ProbeConfig  # noqa: F401
    from .methods import get_method  # noqa: F401
    from .methods import register as register_method  # noqa: F401
    from .models import ALIASES, fetch_default, load_base, resolve_base  # noqa: F401
    from .outputs import Outputs, write_json, write_outputs  # noqa: F401
    from .pipeline import scan  # noqa: F401
    from .report import to_json, to_markdown, write_markdown  # noqa: F401
    from .result import ScanResult  # noqa: F401
    from .traits import Battery, builtin_names, get_battery, resolve_batteries  # noqa: F401
    from .verdict import Thresholds, Verdict  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, _RENAMED.get(name, name))
    raise AttributeError(f"module 'auditor' has no attribute {name!r}")
