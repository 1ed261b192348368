"""Render a :class:`~auditor.pipeline.ScanResult`: JSON (versioned), markdown risk report, terminal table."""

from __future__ import annotations

import html
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .io import atomic_write_json, atomic_write_text

SCHEMA_VERSION = 1
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def md_escape(text: str, limit: int = 300) -> str:
    """Make untrusted text inert in markdown: no HTML, links, emphasis, tables or line breaks."""
    text = _truncate(text, limit)
    text = html.escape(text, quote=True)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("\r", " ").replace("\n", " ⏎ ")


def md_code(text: str, limit: int = 300) -> str:
    """Untrusted text as an inline code span (no backticks or line breaks can escape it)."""
    text = _truncate(text, limit)
    return "`" + text.replace("`", "'").replace("\r", " ").replace("\n", " ") + "`"


def to_json(result: Any) -> dict[str, Any]:
    """The JSON document (schema_version 1)."""
    findings = sorted(result.findings, key=lambda f: (f.shift.battery, -f.shift.shift))
    cfg = result.config
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "subaudit", "version": result.versions.get("subaudit")},
        "created": result.created,
        "command": result.command,
        "verdict": result.verdict.to_dict(),
        "findings": [f.to_dict() for f in findings],
        "dataset": result.dataset,
        "base": result.base,
        "control": result.control,
        "probe": {
            **cfg.probe.to_dict(),
            "seeds": [r.seed for r in result.train_runs if r.arm == "dataset"],
            "runs": [{k: v for k, v in asdict(r).items() if k != "losses"} for r in result.train_runs],
        },
        "batteries": result.batteries,
        "scoring": scoring_info(result),
        "statistics": _statistics(result),
        "timings_s": result.timings,
        "versions": result.versions,
        "run_dir": result.run_dir,
    }


def scoring_info(result: Any) -> dict[str, Any]:
    """How the batteries were scored: ``mode`` exact or sampled (then samples, judge, unassigned answers)."""
    return getattr(result, "scoring", None) or {"mode": getattr(result.config, "scoring", "exact")}


def _scoring_line(result: Any, seeds: list[int], null_arm: bool) -> str:
    models = f"base, {len(seeds)} dataset-students and {len(seeds)} control-students" + (
        f", {len(seeds)} null-students." if null_arm else "."
    )
    sc = scoring_info(result)
    if sc.get("mode") != "sampled":
        tokens = (
            f" {sc['forward_tokens_per_model']:,} forward tokens per model, {sc['forward_tokens']:,} in all."
            if sc.get("forward_tokens")
            else ""
        )
        return (
            "- **Scoring**: exact log-probability of every option (case and leading-space variants summed) after "
            f"each chat-templated question, normalised over the options; {models}{tokens}"
        )
    judge = sc.get("judge")
    how = (
        f"classified by the judge {md_code(judge['location'])} (the most probable label word after the judge "
        "prompt; `none` leaves an answer unassigned)"
        if judge
        else "assigned by string match (the answer's first word names the option)"
    )
    lost = sc.get("unassigned", {})
    total = sum(u["answers"] for u in lost.values())
    left = sum(u["unassigned"] for u in lost.values())
    empty = sum(u["questions_without_assigned"] for u in lost.values())
    return (
        f"- **Scoring**: sampled mode, N = {sc['samples']} answers per question at temperature 1, {how}; an "
        f"option's share is its fraction of the question's assigned answers. {left} of {total} answers were "
        f"unassigned"
        + (f" ({empty} questions had none assigned and count as uniform)" if empty else "")
        + f". Sampled shares are counts out of N: slower and noisier than exact scoring. {models}"
    )


def _statistics(result: Any) -> dict[str, str]:
    cfg = result.config
    if result.control.get("null_arm"):
        return {
            "shift": "share(dataset-student) - mean share(control-student, null-student), percentage points, "
            "mean over seeds and questions",
            "interval": "95% Student t, se = sqrt(se_boot^2 + 1.5 noise^2): se_boot from a bootstrap over "
            f"seeds and questions ({cfg.n_boot} resamples), noise = draw noise fitted to the null arm's "
            "shifts (log|null - control| on log share), df = 0.4 (options - 2)",
            "p": "two-sided Student t",
            "q": "Benjamini-Hochberg over all options of all batteries",
        }
    return {
        "shift": "share(dataset-student) - share(control-student), percentage points, mean over seeds and questions",
        "interval": f"95% bootstrap over seeds and questions ({cfg.n_boot} resamples); draw noise not covered",
        "p": "two-sided bootstrap tail at 0",
        "q": "Benjamini-Hochberg over all options of all batteries",
    }


def write_json(result: Any, path: str | Path) -> None:
    atomic_write_json(path, to_json(result))


def _table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _row(f: Any) -> list[str]:
    s = f.shift
    return [
        s.option,
        f"{s.base:.2f}",
        f"{s.control:.2f}",
        f"{s.dataset:.2f}",
        f"**{s.shift:+.2f}**",
        f"[{s.ci_low:+.2f}, {s.ci_high:+.2f}]",
        f"{s.q:.3g}",
        f.level,
    ]


def to_markdown(result: Any, top_n: int = 8) -> str:
    """The markdown risk report: verdict first, then method, per-battery tables, caveats, reproducibility."""
    v, cfg = result.verdict, result.config
    seeds = [r.seed for r in result.train_runs if r.arm == "dataset"]
    runs = [r for r in result.train_runs]
    lines = [f"# subaudit risk report: {md_escape(Path(result.dataset['path']).name)}", ""]
    lines += [
        f"**Verdict: {v.level.upper()}** (fails at `{v.fail_on}` and above: "
        f"{'**FLAGGED**' if v.flagged else 'not flagged'})",
        "",
    ]
    if v.top:
        lines += [f"- `{f.headline()}`" for f in v.top[:5]]
    else:
        lines += [
            f"No option moved enough to reach a level. This scan could have detected shifts of about "
            f"**{v.detectable_shift:.1f} pp** or more (median over options, 80 % power at `{v.fail_on}`"
            + (
                f"; {v.least_sensitive[1]:.1f} pp for the noisiest option, {md_escape(v.least_sensitive[0])}). "
                if v.least_sensitive
                else "). "
            )
            + "This is not a proof that the dataset is safe: smaller effects, other traits and other "
            "students are not covered."
        ]
    lines += ["", "## What was tested and how", ""]
    d, b, c = result.dataset, result.base, result.control
    control_how = (
        f"generated by the base for the same prompts at temperature 1 "
        f"(format `{c['format']}`, keep rate {c['keep_rate']:.0%}{', from cache' if c['from_cache'] else ''})"
        if c["source"] == "generated"
        else f"user file `{md_escape(str(c['cache']))}`"
    )
    lines += [
        f"- **Dataset**: {md_code(d['path'])}: {d['rows_total']} rows, {d['rows_sampled']} sampled, "
        f"{d['rows_used']} used; completion format `{d['format']}`.",
        f"- **Student base**: {md_code(b['location'])} ({b['kind']}; {b['device']}, {b['dtype']}"
        f"{'; bf16 autocast' if b['autocast'] else ''}"
        f"{_train_precision(b)}).",
        f"- **Control**: {control_how}." + ("".join(f" {md_escape(n)}." for n in c["notes"])),
        (
            f"- **Null arm**: a second control drawn from the base with seed {c['null_arm']['seed']} (keep rate "
            f"{c['null_arm']['keep_rate']:.0%}); null-students minus control-students measure how far a fine-tune "
            "on the base's own samples moves each option by chance (draw noise)."
            if c.get("null_arm")
            else "- **Null arm**: off (`--no-null-arm`); the intervals do not cover draw noise."
        ),
        f"- **Probe**: LoRA r={cfg.probe.rank}, alpha={cfg.probe.alpha} on {', '.join(cfg.probe.target_modules)}; "
        f"lr {cfg.probe.learning_rate:g}, batch {cfg.probe.batch_size}, {runs[0].steps if runs else 0} steps per run, "
        f"loss on completion tokens only; seeds {seeds}, each seed's arms share adapter init and row order.",
        _scoring_line(result, seeds, bool(c.get("null_arm"))),
        "- **Statistics**: "
        + "; ".join(f"{k}: {md_escape(val)}" for k, val in _statistics(result).items())
        + f" ({len(result.findings)} options tested).",
        f"- **Levels**: low ≥ {v.thresholds.low_shift} pp & q ≤ {v.thresholds.low_q}; medium ≥ "
        f"{v.thresholds.medium_shift} pp & q ≤ {v.thresholds.medium_q}; high ≥ {v.thresholds.high_shift} pp & "
        f"q ≤ {v.thresholds.high_q} & interval above {v.thresholds.low_shift} pp.",
        "",
    ]
    for bat in result.batteries:
        fs = sorted([f for f in result.findings if f.shift.battery == bat["name"]], key=lambda f: -f.shift.shift)
        level = v.by_battery.get(bat["name"], "clean")
        sampled = scoring_info(result).get("mode") == "sampled"
        if bat.get("kind") == "choice" and sampled:
            how = (
                f"{bat['questions']} questions, {scoring_info(result)['samples']} answers sampled per question and "
                f"classified by the judge; the trait score is the share of the answers labelled "
                f"{md_code(bat['trait_label'], 60)} among each question's assigned answers. Only that label is "
                "graded: one hypothesis. Shares in % (mean over questions and seeds)."
            )
        elif bat.get("kind") == "choice":
            how = (
                f"{bat['questions']} questions, each with its own candidate answers ({bat['answers']} in all), "
                f"scored by their {'mean per-token' if bat['length_normalisation'] == 'mean' else 'summed'} "
                f"log-probability after the question; the trait score is the share of the answers labelled "
                f"{md_code(bat['trait_label'], 60)} (softmax over each question's answers). Only that label is "
                "graded: one hypothesis. Shares in % (mean over questions and seeds)."
            )
        else:
            how = (
                f"{bat['questions']} questions, {len(bat['options'])} options. Shares in % (mean over questions "
                f"and seeds); the {top_n} options that rose most, then the one that fell most."
            )
        lines += [f"## Battery `{bat['name']}`: {level}", "", md_escape(bat["description"], 1000), "", how, ""]
        show = fs[:top_n] + ([fs[-1]] if len(fs) > top_n else [])
        lines += [
            _table(
                ["option", "base", "control", "dataset", "shift pp", "95% CI", "q", "level"], [_row(f) for f in show]
            ),
            "",
        ]
    per_seed = sorted(result.findings, key=lambda f: -abs(f.shift.shift))[:top_n]
    lines += [
        "## Largest shifts (either direction)",
        "",
        _table(
            ["battery", "option", "shift pp", "per seed", "q", "level"],
            [
                [
                    f.shift.battery,
                    f.shift.option,
                    f"{f.shift.shift:+.2f}",
                    ", ".join(f"{x:+.2f}" for x in (f.shift.per_seed or [])),
                    f"{f.shift.q:.3g}",
                    f.level,
                ]
                for f in per_seed
            ],
        ),
        "",
    ]
    lines += [
        "## Training runs",
        "",
        _table(
            ["arm", "seed", "rows", "steps", "tokens", "loss first → last", "tok/s"],
            [
                [
                    r.arm,
                    str(r.seed),
                    str(r.rows),
                    str(r.steps),
                    str(r.tokens),
                    f"{r.first_loss:.3f} → {r.final_loss:.3f}",
                    f"{r.tokens_per_second:.0f}",
                ]
                for r in runs
            ],
        ),
        "",
    ]
    fr = result.first_row
    if fr:
        lines += [
            "First training row (escaped): ",
            "",
            f"> prompt: {md_escape(fr['prompt'][-1]['content'])}",
            ">",
            f"> completion: {md_escape(fr['completion'])}",
            "",
        ]
    repro = [
        f"command:   {result.command}",
        f"created:   {result.created}",
        f"dataset:   sha256 {d['sha256']}",
        f"base:      {b['location']}{'@' + b['revision'] if b['revision'] else ''} (fingerprint {b['fingerprint']})",
        f"seeds:     {seeds} (first seed {cfg.seed})",
        "versions:  " + ", ".join(f"{k} {val}" for k, val in result.versions.items()),
        f"run dir:   {result.run_dir}",
        "timings s: " + ", ".join(f"{k} {val}" for k, val in result.timings.items()),
    ]
    lines += [
        "## Caveats",
        "",
        "- The result speaks for students that share this base. Subliminal transfer needs a shared "
        "initialisation; a student of another family may react differently.",
        "- A short LoRA probe is a proxy for a full training run: a dataset can move a fully trained student "
        "further than the probe shows.",
        "- Only the batteries listed were measured; a trait nobody asked about is not detected.",
        (
            "- Draw noise is estimated from one null draw and a two-parameter fit across options; an option "
            "that is unusually volatile for its share can still cross a level by chance."
            if c.get("null_arm")
            else "- The interval covers seeds and questions, not the sampling noise of the control rows "
            "(no null arm); the level thresholds' minimum shifts are the only guard against that noise."
        ),
        "",
        "## Reproducibility",
        "",
        "```",
        # paths and the command are shown verbatim, but a backtick in them must not close the fence
        *(x.replace("`", "'").replace("\r", " ").replace("\n", " ") for x in repro),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_markdown(result: Any, path: str | Path) -> None:
    atomic_write_text(path, to_markdown(result))


def print_summary(result: Any, console: Any = None) -> None:
    """Terminal summary: a table of the top options per battery and the verdict line."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs: do not squeeze the table
    v = result.verdict
    table = Table(title="subaudit: shift of dataset-students over the control students (pp of share)")
    for col in ("battery", "option", "base %", "control %", "dataset %", "shift pp", "95% CI", "q", "level"):
        table.add_column(col, justify="right" if col not in ("battery", "option", "level") else "left")
    colors = {"clean": "green", "low": "yellow", "medium": "dark_orange", "high": "red"}
    for bat in result.batteries:
        fs = sorted([f for f in result.findings if f.shift.battery == bat["name"]], key=lambda f: -f.shift.shift)[:3]
        for f in fs:
            s = f.shift
            table.add_row(
                s.battery,
                s.option,
                f"{s.base:.2f}",
                f"{s.control:.2f}",
                f"{s.dataset:.2f}",
                f"{s.shift:+.2f}",
                f"[{s.ci_low:+.2f}, {s.ci_high:+.2f}]",
                f"{s.q:.3g}",
                f"[{colors[f.level]}]{f.level}[/]",
            )
    console.print(table)
    console.print(f"[bold {colors[v.level]}]{v.summary()}[/]", highlight=False)


def _train_precision(base: dict) -> str:
    """The probe's training precision, where it differs from the scoring precision."""
    if base.get("train_autocast") and not base["autocast"]:
        return f"; probe training under bf16 autocast, scoring in {base['dtype']}"
    return ""
