"""Settings from a file: ``subaudit.toml``, or ``[tool.subaudit]`` in ``pyproject.toml``.

Found in the working directory or the nearest folder above it that has one (``--config FILE`` names one). Every
``scan`` option can be set by its name (``fail-on`` or ``fail_on``); command-line flags override the file.
Two tables are special::

    [thresholds]                 # verdict.Thresholds fields: low_shift, low_q, medium_shift, ...
    medium_shift = 1.5

    [[ignore]]                   # a finding set aside: still reported, marked, but it sets no level
    finding = "tree: willow"
    reason = "moves for every fine-tuned teacher's data; reviewed 2026-11-30"
    expires = "2027-03-01"       # optional: the rule stops applying after this date

In ``pyproject.toml`` they are ``[tool.subaudit.thresholds]`` and ``[[tool.subaudit.ignore]]``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from .errors import InputError
from .verdict import IgnoreRule, Thresholds

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass
class ConfigFile:
    """A config file's scan settings (option name -> value), thresholds and ignore rules."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    ignore: list[IgnoreRule] = field(default_factory=list)


def find_config(start: Path | None = None) -> Path | None:
    """``subaudit.toml``, or a ``pyproject.toml`` with ``[tool.subaudit]``, in ``start`` or the nearest folder above."""
    folder = (start or Path.cwd()).resolve()
    for here in [folder, *folder.parents]:
        if (here / "subaudit.toml").is_file():
            return here / "subaudit.toml"
        pyproject = here / "pyproject.toml"
        if pyproject.is_file() and "subaudit" in _tool(_read(pyproject)):
            return pyproject
    return None


def load_config(path: Path, allowed: set[str]) -> ConfigFile:
    """Read and check ``path``: every key must be one of ``allowed`` (scan option names), ``thresholds`` or
    ``ignore``; an :class:`~auditor.errors.InputError` names the file and the key otherwise."""
    table = _read(path)
    if path.name == "pyproject.toml":
        table = _tool(table).get("subaudit", {})
        if not isinstance(table, dict):
            raise InputError(f"{path}: 'tool.subaudit' must be a table ([tool.subaudit]), got {_show(table)}")
    out = ConfigFile(path)
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key == "thresholds":
            out.thresholds = _thresholds(path, value)
        elif key == "ignore":
            out.ignore = _ignore_rules(path, value)
        elif key in allowed:
            out.values[key] = _setting(path, raw_key, value)
        else:
            names = ", ".join(sorted(k.replace("_", "-") for k in allowed))
            raise InputError(f"{path}: unknown setting '{raw_key}' (known: {names}, thresholds, ignore)")
    return out


def _tool(doc: dict[str, Any]) -> dict[str, Any]:
    """A pyproject's ``[tool]`` table (empty when it has none, or ``tool`` is not a table)."""
    tool = doc.get("tool", {})
    return tool if isinstance(tool, dict) else {}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _setting(path: Path, key: str, value: Any) -> str | int | float | bool:
    """A scan setting's value: a string, number or boolean; a list of strings is joined by commas (``traits``)."""
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise InputError(f"{path}: setting '{key}' must be a string or a list of strings, got {_show(value)}")
        return ",".join(value)
    if not isinstance(value, (str, int, float)):  # a table, a date or a time
        raise InputError(f"{path}: setting '{key}' must be a string, number or boolean, got {_show(value)}")
    return value


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise InputError(f"{path}: not valid TOML (arrays or tables nested too deeply)") from None


def _thresholds(path: Path, value: Any) -> dict[str, float]:
    names = {f.name for f in dataclasses.fields(Thresholds)}
    if not isinstance(value, dict):
        raise InputError(f"{path}: 'thresholds' must be a table of {', '.join(sorted(names))}")
    for k, v in value.items():
        if k not in names:
            raise InputError(f"{path}: thresholds.{k} is not a threshold (known: {', '.join(sorted(names))})")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            raise InputError(f"{path}: thresholds.{k} must be a finite number >= 0, got {_show(v)}")
    return {k: float(v) for k, v in value.items()}


def _ignore_rules(path: Path, value: Any) -> list[IgnoreRule]:
    if not isinstance(value, list):
        raise InputError(f"{path}: 'ignore' must be an array of tables ([[ignore]])")
    rules = []
    for i, rule in enumerate(value):
        where = f"{path}: ignore[{i}]"
        if not isinstance(rule, dict):
            raise InputError(f"{where} must be a table with finding, reason and optionally expires")
        unknown = set(rule) - {"finding", "reason", "expires"}
        if unknown:
            raise InputError(f"{where}: unknown key '{sorted(unknown)[0]}' (finding, reason, expires)")
        finding, reason, expires = rule.get("finding"), rule.get("reason"), rule.get("expires")
        if not isinstance(finding, str) or ": " not in finding:
            raise InputError(f"{where}.finding must be 'battery: option', got {finding!r}")
        if not isinstance(reason, str) or not reason.strip():
            raise InputError(f"{where}.reason is required: say why the finding is set aside")
        if isinstance(expires, date):
            expires = expires.isoformat()
        if expires is not None:
            try:
                date.fromisoformat(str(expires))
            except ValueError:
                raise InputError(f"{where}.expires must be a date (YYYY-MM-DD), got {expires!r}") from None
        rules.append(IgnoreRule(finding, reason.strip(), None if expires is None else str(expires)))
    return rules
