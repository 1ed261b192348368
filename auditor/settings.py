"""A scan's settings by name, and how a config file merges with them, for ``subaudit scan`` and :func:`auditor.scan`.

The names are ``subaudit scan``'s options (``seeds``, ``probe_kind``, ``json_out``, ...), which is what a config file
(:mod:`auditor.configfile`) holds. Precedence, the same from the command line and from Python:

1. explicit: a flag on the command line; from Python, a :class:`~auditor.config.ScanConfig` (or
   :class:`~auditor.outputs.Outputs`) field set to anything but its default;
2. the config file: ``subaudit.toml``, or ``[tool.subaudit]`` in ``pyproject.toml``, found from the working
   directory up (``--config FILE`` / ``config_file=PATH`` names one; ``config_file=False`` reads none);
3. the defaults (the per-kind learning rate lives in :class:`~auditor.finetune.ProbeConfig`).

A config that records its ``sources`` (one the CLI or :func:`resolve` built) is used as it is. A Python field set to
its default value cannot be told from one left alone: the file's value applies to it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import (
    DEFAULT_METHOD,
    LEGACY_SETTINGS,
    PROBE_FIELDS,
    PROBE_ONLY_SETTINGS,
    PROBE_OPTIONS,
    SAMPLING_FIELDS,
    ScanConfig,
)
from .configfile import ConfigFile, find_config, load_config
from .errors import InputError
from .finetune import DEFAULT_LR
from .methods import get_method
from .outputs import Outputs
from .verdict import Thresholds

#: Every setting and its type on the command line (a config file's value is converted to it).
KINDS: dict[str, type] = {
    "split": str, "subset": str, "data_revision": str, "base": str, "revision": str, "control": str,
    "null_arm": bool, "calibration": str, "traits": str, "seeds": int, "seed": int, "max_rows": int,
    "probe_kind": str, "rank": int, "alpha": int, "target_modules": str, "lr": float, "epochs": float,
    "max_steps": int, "batch_size": int, "scoring": str, "samples": int, "judge": str, "method": str,
    "method_arg": list, "device": str, "precision": str, "fail_on": str, "gate": str, "null_control": str,
    "control_sampler": str, "control_candidates": int, "control_tries": int, "control_count": str,
    "control_temperature": float, "control_top_p": float,
    "teacher": str, "teacher_system": str, "discover": bool, "report": str, "json_out": str, "junit": str, "sarif": str,
    "pr_comment": str, "plots": str, "github": bool, "run_dir": str, "resume": bool, "trust_remote_code": bool,
    "allow_pickle": bool, "load_in_4bit": bool, "device_map": str, "adapter": str, "budget": str, "quiet": bool,
    "min_rows": int, "chat_template": str,
}  # fmt: skip

#: Settings that are ScanConfig fields of the same name.
SCAN_FIELDS = (
    "split", "subset", "data_revision", "base", "revision", "control", "traits", "seed", "device", "precision",
    "fail_on", "run_dir", "resume", "trust_remote_code", "allow_pickle", "method", "adapter", "load_in_4bit",
    "device_map", "budget", "min_rows", "chat_template",
)  # fmt: skip
#: Settings that are method settings of the same name (the probe's; ``method_args``, read back through the
#: config's names for them): a method without one ignores it.
METHOD_FIELDS = tuple(name for name in LEGACY_SETTINGS if name in KINDS)
OUTPUT_FIELDS = tuple(f.name for f in dataclasses.fields(Outputs))


@dataclass
class Settings:
    """A scan's effective settings: the config, what to write where (``None``: nothing), the CLI's ``quiet``, and
    the config file they were merged with."""

    config: ScanConfig
    outputs: Outputs | None = None
    quiet: bool = False
    file: ConfigFile | None = None


def resolve(
    config: ScanConfig, outputs: Outputs | None = None, config_file: str | Path | bool | None = None
) -> Settings:
    """``config`` and ``outputs`` with a config file's settings where they hold defaults (see the module docstring).
    Without a file they are returned as they are; ``outputs`` stays ``None`` unless the file names an output."""
    path = _file_path(config, config_file)
    if path is None:
        return Settings(config, outputs)
    file = load_config(path, set(KINDS))
    values = flatten(config, outputs or Outputs())
    defaults = flatten(ScanConfig(config.data), Outputs())
    explicit = {name for name, value in values.items() if value != defaults[name]}
    merged, sources = merge(values, explicit, file, "python")
    choose_method(merged, sources)
    changed = {name: merged[name] for name in (*file.values, "method") if name not in explicit}
    if outputs is None and any(name in OUTPUT_FIELDS for name in changed):
        outputs = Outputs()
    new, outs = apply(config, outputs or Outputs(), changed, sources)
    return Settings(finish(new, sources, file), outs if outputs is not None else None, bool(merged["quiet"]), file)


def from_values(data: str, values: dict[str, Any], explicit: set[str], path: Path | None) -> Settings:
    """The CLI's settings: ``values`` (every setting, its defaults included), the ``explicit`` ones (given on the
    command line) kept, the others taken from the config file at ``path`` where it holds them."""
    file = load_config(path, set(KINDS)) if path else None
    merged, sources = merge(values, explicit, file, "command line")
    choose_method(merged, sources)
    config, outputs = apply(ScanConfig(data), Outputs(), merged, sources)
    return Settings(finish(config, sources, file), outputs, bool(merged.get("quiet")), file)


def _file_path(config: ScanConfig, config_file: str | Path | bool | None) -> Path | None:
    if config_file is False:
        return None
    if config_file is None or config_file is True:
        return None if config.sources else find_config()
    return Path(config_file)


def merge(
    values: dict[str, Any], explicit: set[str], file: ConfigFile | None, label: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every setting's effective value and its source: ``label`` for the explicit ones, the file's path for those the
    file holds (converted to the setting's type), ``default`` for the rest (their value in ``values``)."""
    out, sources = dict(values), {}
    for name in sorted(values):
        if name in explicit:
            sources[name] = label
        elif file is not None and name in file.values:
            out[name] = convert(name, file.values[name], file.path)
            sources[name] = str(file.path)
        else:
            sources[name] = "default"
    return out, sources


def choose_method(values: dict[str, Any], sources: dict[str, str]) -> None:
    """Settle ``values["method"]`` (and its source) in place. Left to its default, the method is the probe when a
    setting only the probe reads was given (:data:`~auditor.config.PROBE_ONLY_SETTINGS`: ``--teacher``, ``--seeds``,
    ``--discover`` ..., on the command line or in a config file), else :data:`~auditor.config.DEFAULT_METHOD`; a
    method that was named and is not the probe refuses such a setting rather than ignore it. (A config built in
    Python chose its method when it was made, :meth:`~auditor.config.ScanConfig.__post_init__`, and keeps the old
    leniency: another method ignores the probe's settings.)"""
    given = [name for name in PROBE_ONLY_SETTINGS if sources.get(name, "default") not in ("default", "python")]
    if sources.get("method", "default") == "default":
        values["method"] = "probe" if given else DEFAULT_METHOD
        if given:
            sources["method"] = f"default: the probe, which {_label(given[0], sources)} needs"
    elif values["method"] != "probe" and given:
        raise InputError(
            f"{_label(given[0], sources)} is a setting of --method probe, which {_label('method', sources)} "
            f"{values['method']} does not read; drop one of them"
        )


def flatten(config: ScanConfig, outputs: Outputs, quiet: bool = False) -> dict[str, Any]:
    """Every setting's value by name (``lr``: ``None`` at the kind's default; ``max_rows``: 0 for all rows)."""
    probe = config.probe
    args = [f"{k}={v}" for k, v in config.setting("method_arg").items()]
    return {
        **{name: getattr(config, name) for name in (*SCAN_FIELDS, *METHOD_FIELDS)},
        "max_rows": config.max_rows or 0,
        **{name: config.setting(name) for name in (*PROBE_FIELDS, "target_modules", *SAMPLING_FIELDS, *PROBE_OPTIONS)},
        "lr": None if probe.learning_rate == DEFAULT_LR.get(probe.kind) else probe.learning_rate,
        "method_arg": args or None,
        **{name: getattr(outputs, name) for name in OUTPUT_FIELDS},
        "quiet": quiet,
    }


def apply(
    config: ScanConfig, outputs: Outputs, values: dict[str, Any], sources: dict[str, str]
) -> tuple[ScanConfig, Outputs]:
    """``config`` and ``outputs`` with the settings in ``values`` (by name) in place."""
    top = {name: values[name] for name in SCAN_FIELDS if name in values}
    if "max_rows" in values:
        top["max_rows"] = values["max_rows"] or None
    sampling = {f: values[name] for name, f in SAMPLING_FIELDS.items() if name in values}
    own = {name: values[name] for name in METHOD_FIELDS if name in values}
    new = dataclasses.replace(
        config,
        **top,
        control_sampling=dataclasses.replace(config.control_sampling, **sampling),
        method_args={
            **_method_args(config, values, _label("method_arg", sources)),
            **own,
            "probe": _probe(config, values),
        },
    )
    return new, dataclasses.replace(outputs, **{name: values[name] for name in OUTPUT_FIELDS if name in values})


def _probe(config: ScanConfig, values: dict[str, Any]) -> Any:
    probe = config.probe
    changes = {f: values[name] for name, f in PROBE_FIELDS.items() if name in values}
    if "target_modules" in values:
        changes["target_modules"] = tuple(t.strip() for t in str(values["target_modules"]).split(",") if t.strip())
    if "kind" in changes and "learning_rate" not in changes and probe.learning_rate == DEFAULT_LR.get(probe.kind):
        changes["learning_rate"] = None  # the new kind's default
    return dataclasses.replace(probe, **changes)


def _method_args(config: ScanConfig, values: dict[str, Any], label: str) -> dict[str, Any]:
    """The method's settings: ``method_arg`` (KEY=VALUE strings) over the config's; ``discover`` and
    ``teacher_system`` for the probe (a ``method_arg`` of that name wins; with another method :func:`choose_method`
    has refused them). The options the probe owns (``seeds``, ``rank`` ...) are added by :func:`apply`."""
    args = {**config.method_args, **key_values(list(values.get("method_arg") or []), label)}
    if values.get("method", config.method) == "probe":
        for name in PROBE_OPTIONS:
            if values.get(name) is not None:
                args.setdefault(name, values[name])
    return args


def key_values(items: list[str], option: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{option} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def finish(config: ScanConfig, sources: dict[str, str], file: ConfigFile | None) -> ScanConfig:
    """The config with the file's thresholds and ignore rules (where it has none of its own) and every setting's
    source; a bad value from the file names the file and the setting."""
    if file is not None and config.thresholds == Thresholds():
        config.thresholds = dataclasses.replace(Thresholds(), **file.thresholds)
    if file is not None and not config.ignore:
        config.ignore = list(file.ignore)
    config.sources = {**sources, **({"thresholds": str(file.path)} if file and file.thresholds else {})}
    if file is not None:  # the scan validates again; here the error can say which file the bad value came from
        try:
            config.validate()
            method = get_method(config.method)
            method.check_settings(config, method.parse_settings(config.method_args))
        except InputError as exc:
            from_file = [n for n, s in sources.items() if s == str(file.path)]
            named = [n for n in from_file if _names(str(exc), n, True)] or [
                n for n in from_file if _names(str(exc), n, False)
            ]
            if named:
                raise InputError(f"{exc} (set by '{named[0].replace('_', '-')}' in {file.path})") from None
            raise
    return config


def _label(name: str, sources: dict[str, str]) -> str:
    """How an error names a setting: ``--method-arg``, or ``FILE: setting 'method-arg'`` when a file set it."""
    source, flag = sources.get(name, "default"), name.replace("_", "-")
    return f"--{flag}" if source in ("default", "command line", "python") else f"{source}: setting '{flag}'"


def _names(message: str, name: str, as_flag: bool) -> bool:
    """Whether an error message names the setting ``name``: as a flag (``--fail-on``) or as a word (``rank``,
    ``batch size``)."""
    forms = [f"--{name.replace('_', '-')}"] if as_flag else [name, name.replace("_", " ")]
    return any(re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", message) for form in forms)


def convert(name: str, value: Any, path: Any) -> Any:
    """A config file's value for the setting ``name``, of the type the command line gives it (``seeds``: an int,
    ``method_arg``: a list of strings); an InputError names the file and the setting when it has another."""
    kind = KINDS[name]
    text = str(value).strip().lower()
    converted: Any = None
    if kind is list:  # --method-arg: "a=1,b=2" (a list in the file was joined by commas)
        converted = value.split(",") if isinstance(value, str) else None
    elif kind is bool:
        bools = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
        converted = value if isinstance(value, bool) else bools.get(text) if isinstance(value, str) else None
    elif isinstance(value, bool):
        converted = None  # a boolean where a number or a string belongs
    elif kind is int:
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            converted = int(value)
        elif isinstance(value, str) and re.fullmatch(r"[+-]?\d+", text):
            converted = int(text)
    elif kind is float:
        try:
            converted = float(value)
        except ValueError:
            converted = None
    else:
        converted = value if isinstance(value, str) else str(value)
    if converted is None:
        want = {list: "a list of strings", bool: "true or false", int: "an integer", float: "a number"}
        raise InputError(
            f"{path}: setting '{name.replace('_', '-')}' must be {want.get(kind, 'a string')}, got {value!r}"
        )
    return converted
