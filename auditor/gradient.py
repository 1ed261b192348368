"""A first-order detector: ``subaudit scan --method gradient``.

Instead of fine-tuning, ask what *one* step on each row would do. At the probe's initialisation (LoRA ``B``
zero, ``A`` from the seed) the gradient of the training loss on row ``r`` is ``grad L_r`` and the gradient
of option ``k``'s battery share (pp, mean over questions) is ``g_k``; a gradient-descent step on the row
changes the share by ``-lr * g_k . grad L_r`` to first order. That *push* is computed for every dataset row
and every control row (the base's own answer to the same prompt) and every graded option, and a paired
t-test over prompts asks whether the dataset pushes an option up more than the control does. Each row gets
a score, so the report lists the rows that push the top option most.

Cost: one backward pass per graded option over a seeded sample of each battery's questions (``questions``,
default 8), and one forward and backward pass per row of each arm (per-row gradients of the ``B`` matrices
come from hooks, in batches). Units: a push is pp of share per unit learning rate per row, so levels are
graded on the q-value alone (any positive push difference). The probe (``--method probe``) measures what a
short fine-tune actually does; this measures only its first step.

Measured (README): it flags the owl example (high) and also the clean example (medium); on the detection
benchmark's grid, 6 of 6 fine-tuned teachers' datasets (high) and 5 of 8 base-written negatives (medium or
above). The paired test over rows is sensitive to any systematic difference between how the dataset and the
control rows were sampled, so it is a tool to find rows, not a gate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .stats import OptionShift, adjust_q
from .verdict import Finding, Thresholds, Verdict, decide

#: Questions per battery the trait gradients are taken over (a seeded sample).
GRADIENT_QUESTIONS = 8
#: Any positive push difference counts; levels come from the q-value (see the module docstring).
GRADIENT_THRESHOLDS = Thresholds(low_shift=1e-12, medium_shift=1e-12, high_shift=1e-12)


@dataclass
class GradientResult:
    """What a gradient scan found."""

    config: Any
    verdict: Verdict
    findings: list[Finding]
    dataset: dict[str, Any]
    base: dict[str, Any]
    control: dict[str, Any]
    batteries: list[dict[str, Any]]
    questions: dict[str, list[int]]  # battery -> question indices the trait gradients used
    top_rows: dict[str, list[dict[str, Any]]]  # "battery: option" -> rows pushing it most
    timings: dict[str, float]
    versions: dict[str, str]
    created: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def headline(self, f: Finding) -> str:
        s = f.shift
        t = s.shift / ((s.ci_high - s.ci_low) / 2 / 1.96) if s.ci_high > s.ci_low else 0.0
        return f"{s.battery}: {s.option} push {s.shift:+.3g} (z~{t:.1f}), q={s.q:.3g} -> {f.level}"

    def summary(self) -> str:
        if self.verdict.top:
            more = f" (+{len(self.verdict.top) - 1} more)" if len(self.verdict.top) > 1 else ""
            return f"{self.verdict.level.upper()} (gradient): {self.headline(self.verdict.top[0])}{more}"
        return (
            "CLEAN (gradient): no option is pushed up more by the dataset than by the control. Not a proof of safety."
        )


def _graded_shares(loaded: Any, plan: Any, questions: Sequence[int]) -> Any:
    """Differentiable battery shares (pp, mean over ``questions``) of the battery's graded options, under the
    training precision (a gradient's direction, the same for both arms, need not be as exact as a score)."""
    import torch

    from .scoring import ChoicePlan, _tree_logprobs

    battery = plan.battery
    prefixes = [plan.prefixes[q] for q in questions]
    if isinstance(plan, ChoicePlan):
        conts = [plan.answer_ids[q] for q in questions]
        tokens = _tree_logprobs(loaded, prefixes, conts, autocast_dtype=loaded.train_autocast_dtype)
        shares = []
        for q, per_answer in zip(questions, tokens):
            agg = [t.mean() if battery.length_normalisation == "mean" else t.sum() for t in per_answer]
            log_share = torch.log_softmax(torch.stack(agg), dim=0)
            owners = torch.tensor(plan.answer_option[q])
            shares.append(torch.stack([log_share[owners == k].exp().sum() for k in range(len(battery.options))]))
    else:
        tokens = _tree_logprobs(
            loaded, prefixes, [plan.variant_ids] * len(prefixes), autocast_dtype=loaded.train_autocast_dtype
        )
        owners = torch.tensor(plan.variant_option)
        shares = []
        for per_variant in tokens:
            v = torch.stack([t.sum() for t in per_variant])
            lp = torch.stack([torch.logsumexp(v[owners == k], dim=0) for k in range(len(battery.options))])
            shares.append(torch.softmax(lp, dim=0))
    mean = torch.stack(shares).mean(dim=0) * 100
    graded = [k for k, o in enumerate(battery.options) if o in battery.graded_options]
    return mean[graded], [battery.options[k] for k in graded]


def _b_modules(prober: Any) -> list[tuple[str, Any]]:
    """The adapter's ``lora_B`` linear layers (their weights are the only non-zero gradients at init)."""
    out = []
    for name, module in prober.model.named_modules():
        if name.endswith(f"lora_B.{prober.ADAPTER}"):
            out.append((name, module))
    return out


def trait_gradients(
    prober: Any, plans: Sequence[Any], questions: dict[str, list[int]]
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """``g_k`` for every graded option: per ``lora_B`` module, a tensor ``[options, out, r]``."""
    import torch

    loaded = prober.loaded
    modules = _b_modules(prober)
    weights = [m.weight for _, m in modules]
    names: list[tuple[str, str]] = []
    per_module: list[list[Any]] = [[] for _ in modules]
    for plan in plans:
        with torch.enable_grad():
            shares, options = _graded_shares(loaded, plan, questions[plan.battery.name])
            for k, option in enumerate(options):
                grads = torch.autograd.grad(shares[k], weights, retain_graph=k < len(options) - 1)
                for m, g in enumerate(grads):
                    per_module[m].append(g.detach().float())
                names.append((plan.battery.name, option))
    return names, {name: torch.stack(gs) for (name, _), gs in zip(modules, per_module)}


def row_pushes(prober: Any, rows: Sequence[Any], grads: dict[str, Any], batch_size: int = 8) -> np.ndarray:
    """``[rows, options]``: ``-g_k . grad L_r`` for every row (its per-row mean completion loss)."""
    import torch

    from .probe import pad_batch

    loaded = prober.loaded
    device = loaded.device
    modules = dict(_b_modules(prober))
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    handles = []
    for name, module in modules.items():

        def hook(mod: Any, args: Any, out: Any, name: str = name) -> None:
            inputs[name] = args[0].detach()
            out.register_hook(lambda g, name=name: outputs.__setitem__(name, g.detach()))

        handles.append(module.register_forward_hook(hook))
    encoded = prober.encode(rows)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # less padding
    n_options = next(iter(grads.values())).shape[0]
    push = np.zeros((len(rows), n_options))
    pad = loaded.tokenizer.pad_token_id or 0
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, att, lab = pad_batch([encoded[i] for i in idx], pad)
            ids, att, lab = ids.to(device), att.to(device), lab.to(device)
            with torch.enable_grad(), loaded.train_autocast():
                logits = prober.model(input_ids=ids, attention_mask=att).logits[:, :-1].float()
                targets = lab[:, 1:]
                token_loss = torch.nn.functional.cross_entropy(
                    logits.transpose(1, 2), targets, ignore_index=-100, reduction="none"
                )
                per_row = token_loss.sum(dim=1) / (targets != -100).sum(dim=1).clamp(min=1)
                per_row.sum().backward()
            total = torch.zeros((len(idx), n_options), device=device)
            for name in modules:
                per_example = torch.einsum("bto,bti->boi", outputs[name].float(), inputs[name].float())
                total += torch.einsum("boi,koi->bk", per_example, grads[name].to(device))
            push[idx] = -total.cpu().double().numpy()
            prober.model.zero_grad(set_to_none=True)
    finally:
        for h in handles:
            h.remove()
    return push


def compare_pushes(
    names: Sequence[tuple[str, str]],
    base_shares: dict[str, dict[str, float]],
    dataset: np.ndarray,
    control: np.ndarray,
    confidence: float = 0.95,
) -> list[OptionShift]:
    """Paired t-test over prompts, per option: dataset push minus control push."""
    from scipy.stats import t as student_t

    diff = dataset - control
    n = diff.shape[0]
    out = []
    for k, (battery, option) in enumerate(names):
        d = diff[:, k]
        mean = float(d.mean())
        se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
        df = max(1, n - 1)
        crit = float(student_t.ppf(1 - (1 - confidence) / 2, df))
        p = float(2 * student_t.sf(abs(mean) / se, df)) if se > 0 else 1.0
        share = base_shares[battery][option]
        out.append(
            OptionShift(
                battery=battery,
                option=option,
                base=share,
                control=float(control[:, k].mean()),
                dataset=float(dataset[:, k].mean()),
                shift=mean,
                ci_low=mean - crit * se,
                ci_high=mean + crit * se,
                p=p,
                se_boot=se,
            )
        )
    return out


def top_pushing_rows(rows: Sequence[Any], pushes: np.ndarray, k: int, limit: int = 10) -> list[dict[str, Any]]:
    """The dataset rows that push option ``k`` up most, with their file lines and completions."""
    order = np.argsort(-pushes[:, k])[:limit]
    return [
        {"line": rows[i].line, "push": round(float(pushes[i, k]), 6), "completion": rows[i].completion[:200]}
        for i in order
    ]


def gradient_scan(config: Any, reporter: Any = None) -> GradientResult:
    """Run the first-order detector for a :class:`auditor.pipeline.ScanConfig` (see the module docstring)."""
    from .control import build_control
    from .data import load_dataset
    from .models import resolve_base
    from .pipeline import base_info, check_batteries, dataset_summary, load_model, utc_now, versions
    from .probe import Prober
    from .progress import Reporter
    from .scoring import plan_battery, score_battery
    from .traits import resolve_batteries

    rep = reporter or Reporter()
    config.validate()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    dataset = load_dataset(config.data, max_rows=config.max_rows, seed=config.seed)
    batteries = resolve_batteries(config.traits)
    check_batteries(config, batteries)
    spec = resolve_base(config.base, revision=config.revision)
    start = time.perf_counter()
    rep.note(f"loading base {spec.display}")
    loaded = load_model(config, spec)
    timings["load_base"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    with rep.stage("control rows", total=len(dataset)) as advance:
        control = build_control(
            loaded, dataset, seed=config.seed, control_file=config.control, progress=lambda n, _t: advance(n)
        )
    timings["control"] = round(time.perf_counter() - start, 2)
    pairs = [(e, c) for e, c in zip(dataset.examples, control.rows) if c is not None]
    if len(pairs) < 3:
        from .errors import InputError

        raise InputError(f"{config.data}: fewer than 3 dataset rows have a usable control row")
    data_rows = [e for e, _ in pairs]
    prober = Prober(loaded, config.probe)
    prober.reset_adapter(config.seed)
    plans = [plan_battery(loaded.tokenizer, b) for b in batteries]
    rng = np.random.default_rng(config.seed)
    questions = {
        p.battery.name: sorted(
            rng.choice(len(p.prefixes), size=min(config.gradient_questions, len(p.prefixes)), replace=False).tolist()
        )
        for p in plans
    }
    start = time.perf_counter()
    with prober.disabled():
        base_scores = {p.battery.name: score_battery(loaded, p) for p in plans}
    base_shares = {
        name: {o: float(v) for o, v in zip(s.options, s.share.mean(axis=0) * 100)} for name, s in base_scores.items()
    }
    with rep.stage("trait gradients", total=len(plans)) as advance:
        names, grads = trait_gradients(prober, plans, questions)
        advance(len(plans))
    timings["trait_gradients"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    with rep.stage("dataset rows", total=1) as advance:
        d_push = row_pushes(prober, data_rows, grads, config.probe.batch_size)
        advance(1)
    with rep.stage("control rows (gradients)", total=1) as advance:
        c_push = row_pushes(prober, [c for _, c in pairs], grads, config.probe.batch_size)
        advance(1)
    timings["row_gradients"] = round(time.perf_counter() - start, 2)
    shifts = adjust_q(compare_pushes(names, base_shares, d_push, c_push))
    verdict, findings = decide(shifts, fail_on=config.fail_on, thresholds=GRADIENT_THRESHOLDS)
    ranked = sorted(range(len(names)), key=lambda k: -shifts[k].shift)[:3]
    top_rows = {f"{names[k][0]}: {names[k][1]}": top_pushing_rows(data_rows, d_push, k) for k in ranked}
    timings["total"] = round(time.perf_counter() - t0, 2)
    return GradientResult(
        config=config,
        verdict=verdict,
        findings=findings,
        dataset=dataset_summary(dataset, rows_used=len(pairs)),
        base=base_info(spec, loaded),
        control={"source": control.source, "kept": control.kept, "attempts": control.attempts, "notes": control.notes},
        batteries=[b.summary() for b in batteries],
        questions=questions,
        top_rows=top_rows,
        timings=timings,
        versions=versions(),
        created=utc_now(),
    )


def to_json(result: GradientResult) -> dict[str, Any]:
    """The JSON document of a gradient scan (``schema: subaudit-gradient/1``)."""
    from dataclasses import asdict

    return {
        "schema": "subaudit-gradient/1",
        "method": "gradient",
        "created": result.created,
        "verdict": {
            "level": result.verdict.level,
            "flagged": result.verdict.flagged,
            "fail_on": result.verdict.fail_on,
            "summary": result.summary(),
            "by_battery": result.verdict.by_battery,
        },
        "findings": [
            {
                "battery": f.shift.battery,
                "option": f.shift.option,
                "base_share_pp": round(f.shift.base, 4),
                "push_dataset": f.shift.dataset,
                "push_control": f.shift.control,
                "push_difference": f.shift.shift,
                "ci": [f.shift.ci_low, f.shift.ci_high],
                "p": f.shift.p,
                "q": f.shift.q,
                "level": f.level,
            }
            for f in sorted(result.findings, key=lambda f: f.shift.p)
        ],
        "top_rows": result.top_rows,
        "questions": result.questions,
        "dataset": result.dataset,
        "base": result.base,
        "control": result.control,
        "config": {k: v for k, v in asdict(result.config).items() if k != "probe"}
        | {"probe": result.config.probe.to_dict()},
        "timings_s": result.timings,
        "versions": result.versions,
    }


def to_markdown(result: GradientResult) -> str:
    """A short markdown report of a gradient scan."""
    lines = [
        "# subaudit gradient scan",
        "",
        f"**{result.summary()}**",
        "",
        f"Dataset `{result.dataset['path']}` ({result.dataset['rows_used']} rows paired with control rows); base "
        f"`{result.base['location']}`. First-order detector (see `auditor/gradient.py`): push = -g_k . grad L_r, "
        "pp of share per unit learning rate per row; paired t-test over prompts; BH q over all options.",
        "",
        "| battery | option | base % | push dataset | push control | difference | 95% CI | q | level |",
        "|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for f in sorted(result.findings, key=lambda f: f.shift.p)[:15]:
        s = f.shift
        lines.append(
            f"| {s.battery} | {s.option} | {s.base:.2f} | {s.dataset:+.3g} | {s.control:+.3g} | {s.shift:+.3g} | "
            f"[{s.ci_low:+.3g}, {s.ci_high:+.3g}] | {s.q:.3g} | {f.level} |"
        )
    for option, rows in result.top_rows.items():
        lines += ["", f"Rows pushing **{option}** most:", ""]
        lines += [f"- line {r['line']}: push {r['push']:+.3g}: `{r['completion'][:80]}`" for r in rows[:5]]
    return "\n".join(lines) + "\n"
