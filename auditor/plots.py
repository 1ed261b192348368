"""Plots of a scan (``--plots DIR``; matplotlib, headless): a forest plot of every option's shift with its
interval, coloured by level, the level thresholds marked; and per battery, the base's, control-students' and
dataset-students' shares of the options that moved most."""

from __future__ import annotations

from pathlib import Path

from .methods import get_method
from .result import ScanResult
from .verdict import LEVELS

#: Matplotlib colours of the levels (the terminal's, in matplotlib's names).
COLOURS = {"clean": "tab:green", "low": "gold", "medium": "darkorange", "high": "tab:red"}
#: Options per battery in the shares plot.
SHARES_TOP = 10


def plot_files(result: ScanResult, folder: Path) -> list[Path]:
    """The files :func:`write_plots` writes into ``folder`` (known before they are drawn, so a report written first
    can link them)."""
    return [folder / "forest.png", *(folder / f"shares-{b.name}.png" for b in result.batteries)]


def write_plots(result: ScanResult, folder: Path) -> list[Path]:
    """Write ``forest.png`` and ``shares-<battery>.png`` into ``folder``; returns them."""
    try:
        import matplotlib
    except ImportError:
        from .errors import InputError

        raise InputError("--plots needs matplotlib: pip install 'subliminal-audit[plots]'") from None
    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    forest, *shares = plot_files(result, folder)
    return [forest_plot(result, forest), *(shares_plot(result, b.name, p) for b, p in zip(result.batteries, shares))]


def forest_plot(result: ScanResult, path: Path) -> Path:
    import matplotlib.pyplot as plt

    findings = sorted(result.findings, key=lambda f: (f.shift.battery, f.shift.shift))
    height = max(3.0, 0.22 * len(findings) + 1.2)
    fig, ax = plt.subplots(figsize=(8, height))
    for y, f in enumerate(findings):
        s = f.shift
        colour = "lightgrey" if f.ignored is not None else COLOURS[f.level]
        ax.plot([s.ci_low, s.ci_high], [y, y], color=colour, linewidth=2)
        ax.plot([s.shift], [y], "o", color=colour, markersize=4)
    ax.set_yticks(range(len(findings)))
    ax.set_yticklabels([f.name for f in findings], fontsize=6)
    ax.axvline(0, color="black", linewidth=0.8)
    if get_method(result.method).shift_thresholds:
        th = result.verdict.thresholds
        for level, x in (("low", th.low_shift), ("medium", th.medium_shift), ("high", th.high_shift)):
            label = f"{level} ≥ {x:g} {result.verdict.unit} (and q)"
            ax.axvline(x, color=COLOURS[level], linestyle="--", linewidth=0.8, label=label)
    for level in LEVELS:
        ax.plot([], [], "o", color=COLOURS[level], label=level)
    ax.set_xlabel(f"shift ({result.verdict.unit}): dataset-student minus its control (see the report), 95 % interval")
    ax.set_title(f"subaudit: {result.verdict.level.upper()} ({Path(result.dataset.path).name})", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def shares_plot(result: ScanResult, battery: str, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    findings = [f for f in result.findings if f.shift.battery == battery]
    shown = sorted(findings, key=lambda f: -abs(f.shift.shift))[:SHARES_TOP]
    x = np.arange(len(shown))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(shown) + 2), 3.6))
    series = [
        ("control-student", [f.shift.control for f in shown]),
        ("dataset-student", [f.shift.dataset for f in shown]),
    ]
    method = get_method(result.method)
    if method.shows_base:
        series.insert(0, ("base", [f.shift.base for f in shown]))
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width=width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels([f.shift.option for f in shown], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(method.arms_label)
    ax.set_title(f"{battery}: the {len(shown)} options that moved most", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
