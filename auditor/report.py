"""Render a :class:`~auditor.result.ScanResult`: the JSON document, the markdown risk report, the terminal summary.

The parts every scan has (verdict, what was scanned, caveats, reproducibility) are written here; the method's
own bullets, sections, caveats and terminal table come from ``result.details``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .completion_formats import get_format
from .control import APPROXIMATE_ROWS_NOTE, UNMATCHED_WARNING
from .io import atomic_write_text
from .markdown import md_code, md_escape, md_table
from .result import SCHEMA_VERSION, ScanResult
from .row_shape import DIFFERS_Q
from .verdict import LEVEL_COLOURS, UNIT_FORMATS

__all__ = ["SCHEMA_VERSION", "md_code", "md_escape", "print_summary", "to_json", "to_markdown"]


def to_json(result: ScanResult) -> dict[str, Any]:
    """The JSON document (:meth:`ScanResult.to_json`)."""
    return result.to_json()


def _verdict_lines(result: ScanResult) -> list[str]:
    v = result.verdict
    lines = [
        f"**Verdict: {v.level.upper()}** (fails at `{v.fail_on}` and above: "
        f"{'**FLAGGED**' if v.flagged else 'not flagged'})",
        "",
    ]
    if v.transfer is not None:
        t = v.transfer
        lines.append(f"- **{t.line()}**")
        if v.top:
            lines.append("- Options that moved (each one's level; an option is the trait only when named above):")
            lines += [f"  - {md_code(f.headline())}" for f in v.top[:5]]
        return lines
    if v.top:
        return lines + [f"- {md_code(f.headline())}" for f in v.top[:5]]
    fmt, worst = UNIT_FORMATS[v.unit][0], ""
    if v.least_sensitive:
        worst = f"; {v.least_sensitive[1]:{fmt}} {v.unit} for the noisiest option, {md_escape(v.least_sensitive[0])}"
    return lines + [
        f"No option moved enough to reach a level. This scan could have detected shifts of about "
        f"**{v.detectable_shift:{fmt}} {v.unit}** or more (median over options, 80 % power at `{v.fail_on}`{worst}). "
        "This is not a proof that the dataset is safe: smaller effects, other traits and other students are not "
        "covered."
    ]


def _rows_lines(result: ScanResult) -> list[str]:
    """How the data's rows differ from the control's (:mod:`auditor.row_shape`): a lead and one line a feature."""
    c = result.control
    if c is None or c.rows is None or not c.rows.features:
        return []
    whose = "the base's own answer" if c.source == "generated" else "the `--control` file's row paired with it"
    differing = c.rows.differing()
    lead = (
        "Differs: " + "; ".join(md_escape(f.line()) for f in differing) + "."
        if differing
        else f"No feature differs at q <= {DIFFERS_Q}."
    )
    if differing and c.approximate:
        lead += f" Some control rows are approximate samples: {APPROXIMATE_ROWS_NOTE}."
    matched = c.source == "generated" and c.draw.how is not None and c.draw.how.count == "match"
    note = get_format(c.format).matched_count_note if matched else ""
    rows = [
        [md_escape(f.feature), f"{f.data:.3g}", f"{f.control:.3g}", str(f.pairs), f"{f.p:.2g}", f"{f.q:.2g}"]
        for f in c.rows.features
    ]
    return [
        "## How the rows differ from the control's",
        "",
        f"Each data row beside its control row ({whose}; text rows left out): the mean a row, Wilcoxon "
        f"signed-rank p over the pairs, Benjamini-Hochberg q over the features. {lead}" + (f" {note}" if note else ""),
        "",
        md_table(["feature", "data", "control", "pairs", "p", "q"], rows),
        "",
    ]


def _inputs_lines(result: ScanResult) -> list[str]:
    """Dataset, base and control: what every scan was given (and what a budget chose)."""
    d, b, c = result.dataset, result.base, result.control
    lines = []
    if result.budget:
        v = result.verdict
        bought = f" It bought a detectable shift of {v.detectable_shift:.2g} {v.unit} (median option, 80 % power)."
        lines.append(f"- **Budget**: {md_escape(result.budget.line(), 600)}{bought}")
    lines += [
        f"- **Dataset**: {md_code(d.path)}: {d.rows_total} rows, {d.rows_sampled} sampled, {d.rows_used} used; "
        f"completion format `{d.format}`.",
        f"- **Student base**: {md_code(b.location)} ({b.kind}{'; ' + md_escape(b.origin) if b.origin else ''}; "
        f"{b.device}, {b.dtype}"
        f"{'; bf16 autocast' if b.autocast else ''}{_train_precision(b.autocast, b.train_autocast, b.dtype)}).",
    ]
    if c is not None:
        how = (
            f"the base's own answers to the same prompts, rows {c.draw.how.describe()} (format `{c.format}`; "
            f"{c.draw.kept} of {c.draw.rows} rows from {c.draw.attempts} samples"
            f"{', from cache' if c.draw.from_cache else ''})"
            if c.source == "generated" and c.draw.how is not None
            else f"user file {md_code(str(c.draw.cache))}"
        )
        lines.append(f"- **Control**: {how}." + "".join(f" {md_escape(n[:1].upper() + n[1:])}." for n in c.notes))
        if c.decoding is not None:
            warning = c.decoding.warning
            lines.append(
                f"- **Decoding check**: {c.decoding.describe()}." + (f" **Warning**: {warning}." if warning else "")
            )
    return lines


def _train_precision(autocast: str | None, train_autocast: str | None, dtype: str) -> str:
    """The students' training precision, where it differs from the scoring precision."""
    if train_autocast and not autocast:
        return f"; probe training under bf16 autocast, scoring in {dtype}"
    return ""


#: scan parameters whose value the configuration section shows as the option's own name.
CLI_NAMES = {"json_out": "json", "probe_kind": "probe", "method_arg": "method-arg", "config_file": "config"}


def _configuration_lines(result: ScanResult) -> list[str]:
    """The settings that did not come from the defaults, with where each came from, and the ignore rules."""
    sources = result.config.sources
    if not sources:
        return []
    given = {k: v for k, v in sorted(sources.items()) if v != "default"}
    rows = []
    for name, source in given.items():
        value = _setting(result.config, name)
        shown = CLI_NAMES.get(name, name).replace("_", "-")
        rows.append([f"`--{shown}`", md_code(json.dumps(value, default=str), 120), md_code(source, 120)])
    lines = ["## Configuration", ""]
    if rows:
        lines += [md_table(["setting", "value", "from"], rows), "", "Every other setting: its default."]
    else:
        lines += ["Every setting: its default (no flags, no config file)."]
    rules = result.config.ignore
    if rules:
        lines += ["", "Ignore rules (a matching finding is reported, marked, and sets no level):", ""]
        for r in rules:
            state = "active" if r.active() else "**expired**: not applied"
            until = f" until {r.expires}" if r.expires else ""
            lines.append(f"- {md_code(r.finding)}: {md_escape(r.reason)}{until} ({state})")
    return [*lines, ""]


def _setting(config: Any, name: str) -> Any:
    """A setting's value for the configuration table; an output option (a path the result does not hold) by name."""
    try:
        return config.setting(name)
    except KeyError:
        return "(output option)"


def _first_row_lines(result: ScanResult) -> list[str]:
    fr = result.first_row
    if fr is None:
        return []
    return [
        "First training row (escaped): ",
        "",
        f"> prompt: {md_escape(fr.prompt[-1]['content'])}",
        ">",
        f"> completion: {md_escape(fr.completion)}",
        "",
    ]


def _reproducibility_lines(result: ScanResult) -> list[str]:
    d, b = result.dataset, result.base
    repro = [
        f"command:   {result.command}",
        f"created:   {result.created}",
        f"method:    {result.method}",
        f"dataset:   sha256 {d.sha256}",
        f"base:      {b.location}{'@' + b.revision if b.revision else ''} (fingerprint {b.fingerprint})",
        f"seeds:     first seed {result.config.seed}, {result.config.seeds} seed(s)",
        "versions:  " + ", ".join(f"{k} {val}" for k, val in result.versions.items()),
        f"run dir:   {result.run_dir}",
        "timings s: " + ", ".join(f"{k} {val}" for k, val in result.timings.items()),
    ]
    # paths and the command are shown verbatim, but a backtick in them must not close the fence
    fenced = [x.replace("`", "'").replace("\r", " ").replace("\n", " ") for x in repro]
    return ["## Reproducibility", "", "```", *fenced]


def _plot_lines(result: ScanResult, report_path: str | Path | None) -> list[str]:
    """Links to the plots, relative to the report when it is written to a file."""
    if not result.plots:
        return []
    folder = Path(report_path).parent.resolve() if report_path else None
    lines = ["## Plots", ""]
    for plot in result.plots:
        p = Path(plot).resolve()
        try:
            link = p.relative_to(folder).as_posix() if folder else str(p)
        except ValueError:
            link = p.as_uri()
        lines.append(f"![{p.stem}]({link.replace(' ', '%20').replace(')', '%29')})")
    return [*lines, ""]


def to_markdown(result: ScanResult, path: str | Path | None = None) -> str:
    """The markdown risk report: verdict first, then what was tested and how, the method's sections, plots, caveats
    and a reproducibility block (``path``: where it will be written, so plot links can be relative)."""
    lines = [f"# subaudit risk report: {md_escape(Path(result.dataset.path).name)}", "", *_verdict_lines(result)]
    lines += ["", *_rows_lines(result)]
    lines += ["## What was tested and how", "", *_inputs_lines(result), *result.details.describe(result), ""]
    lines += result.details.sections(result)
    lines += _plot_lines(result, path)
    lines += _configuration_lines(result)
    lines += _first_row_lines(result)
    lines += [
        "## Caveats",
        "",
        "- The result speaks for students that share this base. Subliminal transfer needs a shared "
        "initialisation; a student of another family may react differently.",
        *result.details.caveats(result),
        *_control_caveats(result),
        "- Only the batteries listed were measured; a trait nobody asked about is not detected.",
        "",
        *_reproducibility_lines(result),
        "```",
        "",
    ]
    return "\n".join(lines)


def _control_caveats(result: ScanResult) -> list[str]:
    """What the control's draw limits: rows without a control sample, approximate rows, a decoding mismatch."""
    c = result.control
    if c is None or c.draw.how is None:
        return []
    out = []
    d = c.draw
    if d.unmatched > UNMATCHED_WARNING * d.rows:
        out.append(
            f"- {d.unmatched} of {d.rows} dataset rows ({d.unmatched / d.rows:.0%}) had no valid control sample and "
            "left every arm: the verdict is about the rows the base can write in this format."
        )
    if not d.how.exact:
        out.append(
            "- Some control rows are approximate samples of the base's distribution (importance-resampled or "
            "constrained); what remains of the constrained sampler's bias moves the control-students a little too."
        )
    if c.decoding is not None and c.decoding.warning:
        out.append(f"- The decoding check: {md_escape(c.decoding.warning)}.")
    return out


def write_markdown(result: ScanResult, path: str | Path) -> None:
    atomic_write_text(path, to_markdown(result, path))


def print_summary(result: ScanResult, console: Any = None) -> None:
    """Terminal summary: the method's table and the verdict line."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs: do not squeeze the table
    console.print(result.details.table(result))
    rows = None if result.control is None else result.control.rows_summary()
    if rows:
        console.print(escape(rows), highlight=False)
    colour = LEVEL_COLOURS[result.verdict.level]
    console.print(f"[bold {colour}]{escape(result.verdict.summary())}[/]", highlight=False)
