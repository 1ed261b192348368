"""Every file a scan can write, for people and for CI: the markdown report and JSON (:mod:`auditor.report`), JUnit
XML, SARIF 2.1.0, a compact pull-request comment, the GitHub step summary and plots. :class:`Outputs` says what goes
where and :func:`write_outputs` writes it, for ``subaudit scan`` and ``auditor.scan`` alike.

Text that comes from outside (dataset rows and paths, battery and option names) is escaped for the format it goes
into; subaudit's own prose is written as it should read.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from .errors import RuntimeFailure
from .io import atomic_write_text
from .markdown import md_code, md_escape, md_table
from .report import write_markdown
from .result import ScanResult
from .verdict import LEVELS, Finding, level_rank

TOOL_URI = "https://pypi.org/project/subliminal-audit/"


def _failing(result: ScanResult, f: Finding) -> bool:
    return f.ignored is None and level_rank(f.level) >= level_rank(result.verdict.fail_on)


def write_json(result: ScanResult, path: str) -> None:
    """The JSON document; ``-`` writes it to standard output."""
    text = json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_text(path, text)


# ----------------------------------------------------------------------------------------------------- JUnit


def to_junit(result: ScanResult) -> str:
    """JUnit XML: one test case per battery (a failure when one of its options reaches ``--fail-on``) and, for a
    calibrated scan, one for the transfer test."""
    v = result.verdict
    cases: list[str] = []
    for battery in result.batteries:
        findings = [f for f in result.findings if f.shift.battery == battery.name]
        failing = sorted((f for f in findings if _failing(result, f)), key=lambda f: -level_rank(f.level))
        body = ""
        if failing:
            text = "\n".join(f.headline() for f in failing)
            message = f"{battery.name}: {failing[0].level} ({len(failing)} option(s) at --fail-on {v.fail_on} or above)"
            body = _failure(message, failing[0].level, text)
        cases.append(_case(result, battery.name, body))
    if v.transfer is not None:
        failed = v.transfer.gate != "options" and level_rank(v.transfer.level) >= level_rank(v.fail_on)
        line = v.transfer.line()
        cases.append(_case(result, "transfer", _failure(line, v.transfer.level, line) if failed else ""))
    failures = sum("<failure" in c for c in cases)
    props = {
        "dataset": result.dataset.path,
        "dataset_sha256": result.dataset.sha256,
        "base": result.base.location,
        "method": result.method,
        "verdict": v.level,
        "fail_on": v.fail_on,
    }
    properties = "".join(f"<property name={quoteattr(k)} value={quoteattr(str(val))}/>" for k, val in props.items())
    suite = (
        f'<testsuite name="subaudit" tests="{len(cases)}" failures="{failures}" errors="0" skipped="0" '
        f'time="{result.timings.get("total", 0.0):.2f}" timestamp={quoteattr(result.created[:19])}>'
        f"<properties>{properties}</properties>{''.join(cases)}"
        f"<system-out>{xml_escape(v.summary())}</system-out></testsuite>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites name="subaudit" tests="{len(cases)}" failures="{failures}" errors="0">{suite}</testsuites>\n'
    )


def _failure(message: str, kind: str, text: str) -> str:
    return f"<failure message={quoteattr(message)} type={quoteattr(kind)}>{xml_escape(text)}</failure>"


def _case(result: ScanResult, name: str, body: str) -> str:
    classname = quoteattr("subaudit." + result.method)
    return f'<testcase classname={classname} name={quoteattr(name)} time="0">{body}</testcase>'


def write_junit(result: ScanResult, path: str) -> None:
    atomic_write_text(path, to_junit(result))


# ----------------------------------------------------------------------------------------------------- SARIF

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
RULES = {
    "option-shift": "A student trained on the dataset moved toward a trait option more than students trained on "
    "control rows did.",
    "transfer": "Training on the dataset moves the student unlike training on the base's own data does (all "
    "options at once, against a calibration profile).",
    "row-push": "A dataset row whose one gradient step pushes a trait option up most (gradient method).",
}
SARIF_LEVEL = {"high": "error", "medium": "error", "low": "warning", "clean": "note"}


def to_sarif(result: ScanResult) -> dict[str, Any]:
    """SARIF 2.1.0: a result per option at ``low`` or above (at the dataset file), the transfer test, and the
    gradient method's top rows at their ``file:line``."""
    uri = _artifact_uri(result.dataset.path)
    results: list[dict[str, Any]] = []
    for f in sorted(result.verdict.top, key=lambda f: -level_rank(f.level)):
        results.append(_sarif_result("option-shift", f.level, f.headline(), uri, 1, {"finding": f.to_dict()}))
    t = result.verdict.transfer
    if t is not None and t.level != "clean":
        results.append(_sarif_result("transfer", t.level, t.line(), uri, 1, {"p": t.p, "named": t.named}))
    for option, rows in (result.details.to_json().get("top_rows") or {}).items():
        for row in rows[:5]:
            text = f"row pushes {option} up by {row['push']:+.3g} (one gradient step, per unit learning rate)"
            results.append(_sarif_result("row-push", "low", text, uri, int(row["line"]) or 1, {"option": option}))
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "subaudit",
                        "version": result.versions.get("subaudit", ""),
                        "informationUri": TOOL_URI,
                        "rules": [
                            {"id": rule, "shortDescription": {"text": text}, "fullDescription": {"text": text}}
                            for rule, text in RULES.items()
                        ],
                    }
                },
                "artifacts": [{"location": {"uri": uri}}],
                "results": results,
                "invocations": [{"executionSuccessful": True, "commandLine": result.command}],
            }
        ],
    }


def _sarif_result(rule: str, level: str, text: str, uri: str, line: int, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "ruleId": rule,
        "ruleIndex": list(RULES).index(rule),
        "level": SARIF_LEVEL[level],
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": max(1, line)}}}],
        "properties": {"subaudit_level": level, **props},
    }


def _artifact_uri(path: str) -> str:
    """The dataset as SARIF wants it: relative to the working directory (the repository in CI), else a file URI."""
    p = Path(path).resolve()
    try:
        return p.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return p.as_uri()


def write_sarif(result: ScanResult, path: str) -> None:
    atomic_write_text(path, json.dumps(to_sarif(result), indent=2) + "\n")


# ---------------------------------------------------------------------------------- PR comment, step summary


def to_pr_comment(result: ScanResult, top: int = 5) -> str:
    """Verdict and top findings first; every option's table folded in ``<details>``."""
    v = result.verdict
    icon = {"clean": "🟢", "low": "🟡", "medium": "🟠", "high": "🔴"}[v.level]
    lines = [
        f"### {icon} subaudit: **{v.level.upper()}** on {md_code(Path(result.dataset.path).name, 120)}",
        "",
        f"{'**Flagged**' if v.flagged else 'Not flagged'} at `--fail-on {v.fail_on}`; method `{result.method}`, base "
        f"{md_code(result.base.location, 120)}, {result.dataset.rows_used} rows.",
        "",
    ]
    if v.transfer is not None:
        lines += [f"- {md_escape(v.transfer.line(), 600)}"]
    lines += [f"- {md_code(f.headline())}" for f in v.top[:top]] or ["- No option reached a level."]
    if v.caveat:
        lines += [f"- Read with: {md_escape(v.caveat, 600)}"]
    rows_differ = None if result.control is None else result.control.rows_summary()
    if rows_differ:
        lines += ["", md_escape(rows_differ, 600)]
    ignored = [f for f in result.findings if f.ignored is not None and f.level != "clean"]
    if ignored:
        notes = [f"{md_code(f.name)} ({md_escape(f.ignored.reason, 120)})" for f in ignored if f.ignored is not None]
        lines += ["", "Ignored (config): " + "; ".join(notes)]
    rows = [
        [md_escape(f.shift.battery), md_escape(f.shift.option), *(f.cells()[c] for c in ("shift", "ci", "q", "level"))]
        for f in sorted(result.findings, key=lambda f: (-level_rank(f.level), -f.shift.shift))
    ]
    lines += [
        "",
        "<details><summary>Every option</summary>",
        "",
        md_table(["battery", "option", f"shift {v.unit}", "95% CI", "q", "level"], rows),
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def write_pr_comment(result: ScanResult, path: str) -> None:
    atomic_write_text(path, to_pr_comment(result))


def append_step_summary(result: ScanResult, path: str) -> None:
    """Append the PR-comment markdown to the GitHub Actions step summary file."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(to_pr_comment(result) + "\n")


def write_plots(result: ScanResult, folder: str) -> None:
    from .plots import write_plots as draw

    draw(result, Path(folder))


WRITERS: dict[str, Callable[[ScanResult, str], None]] = {
    "report": write_markdown,
    "json": write_json,
    "junit": write_junit,
    "sarif": write_sarif,
    "pr comment": write_pr_comment,
    "plots": write_plots,
    "step summary": append_step_summary,
}


@dataclass
class Outputs:
    """What a scan writes where (``None``: not written); the ``subaudit scan`` options of the same names.

    Attributes:
        report: the markdown report. json_out: the JSON result (``-``: standard output). junit: JUnit XML.
        sarif: SARIF 2.1.0. pr_comment: a compact markdown for a pull-request comment.
        plots: a folder for the PNG plots; ``None`` puts them beside the report (``REPORT-plots/``) when matplotlib
            is installed.
        github: append a summary to ``$GITHUB_STEP_SUMMARY``; ``None``: whenever that variable is set.
    """

    report: str | None = None
    json_out: str | None = None
    junit: str | None = None
    sarif: str | None = None
    pr_comment: str | None = None
    plots: str | None = None
    github: bool | None = None

    def targets(self) -> dict[str, str | None]:
        """Each output (a key of :data:`WRITERS`) and its path, plots last: a failed report leaves no plots behind
        (the report links them by name)."""
        summary = os.environ.get("GITHUB_STEP_SUMMARY") if self.github is not False else None
        plots = self.plots
        if plots is None and self.report and _has_matplotlib():
            plots = str(Path(self.report).with_suffix("")) + "-plots"
        return {
            "report": self.report,
            "json": self.json_out,
            "junit": self.junit,
            "sarif": self.sarif,
            "pr comment": self.pr_comment,
            "plots": plots,
            "step summary": summary if (self.github or summary) else None,
        }


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def write_outputs(result: ScanResult, outputs: Outputs | None = None, **paths: str | bool | None) -> dict[str, str]:
    """Write every output ``outputs`` (or ``report=..., json_out=...`` as :class:`Outputs` takes them) asks for,
    each atomically (a failed write leaves no partial file); returns what was written where."""
    from .plots import plot_files

    targets = (outputs or Outputs(**paths)).targets()  # type: ignore[arg-type]
    if targets["plots"]:
        result.plots = [str(p) for p in plot_files(result, Path(str(targets["plots"])))]
    written = {}
    for what, path in targets.items():
        if not path:
            continue
        try:
            WRITERS[what](result, path)
        except OSError as exc:
            raise RuntimeFailure(
                f"cannot write the {what} to {path} ({exc.__class__.__name__}: {exc.strerror or exc}); "
                f"nothing was written there. The scan's stages are kept in {result.run_dir}: "
                "run the same command again to write it without recomputing."
            ) from None
        written[what] = path
    return written


__all__ = ["LEVELS", "WRITERS", "Outputs", "to_junit", "to_pr_comment", "to_sarif", "write_outputs"]
