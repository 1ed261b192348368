"""Part 2 of the throughput benchmark: exact scoring against sampling at equal CI width (run by ``throughput.py``).

The ``animal`` battery on the base (no adapter). Exact scoring is ``score_battery``; sampling draws K answers per
question at temperature 1 (prompt run once per question and its cache copied to K rows, so sampling gets the same
prefix sharing as exact scoring) and counts answers naming an option. The K that sampling needs for (nearly) the
exact score's question-level CI, and the cost of sampling at that K, are derived in the markdown ``throughput.py``
writes (section "Definitions", whose part 2 paragraphs are :data:`SCORING_DEFINITIONS`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from bench_common import fmt, fmt_ratio, free_memory, sync_device

from auditor.chat import end_of_turn_ids
from auditor.models import LoadedModel, ModelSpec, load_base
from auditor.scoring import ScoringPlan, SharedPrefix, plan_battery, prompt_tokens, score_battery, shared_prefix
from auditor.traits import get_battery


@dataclass
class SampleRun:
    """K sampled answers per question, with the cost of drawing them."""

    k: int
    answers: list[list[str]]  # [question][sample] decoded answer text
    picks: list[list[int]]  # [question][sample] option index named first in the answer, -1 for none
    prefill_tokens: int
    decode_tokens: int  # K rows per decode pass (finished rows keep running until all K are done)
    decode_passes: int
    prefill_s: float
    decode_s: float

    @property
    def forward_tokens(self) -> int:
        return self.prefill_tokens + self.decode_tokens


def option_matcher(options: Sequence[str]) -> re.Pattern[str]:
    """Regex for any option as a whole word, in lower case (longest first, optional plural ``s``/``es``)."""
    alts = "|".join(re.escape(o.lower()) for o in sorted(options, key=len, reverse=True))
    return re.compile(rf"\b({alts})(?:e?s)?\b")


def first_option(text: str, pattern: re.Pattern[str], options: Sequence[str]) -> int:
    """Index of the option that ``pattern`` finds first in ``text``, -1 when none is named."""
    m = pattern.search(text.lower())
    return [o.lower() for o in options].index(m.group(1)) if m else -1


def prefix_pass(loaded: LoadedModel, prefix: list[int], shared: SharedPrefix | None = None) -> Any:
    """One forward pass over the token ids ``prefix`` with ``use_cache=True``; the model's output (logits, cache).

    With ``shared`` (from ``auditor.scoring.shared_prefix``) shorter than ``prefix``, the pass continues a deep
    copy of ``shared.cache`` from position ``shared.n_tokens`` (the copy leaves ``shared`` intact for the next
    question); otherwise it runs the whole prefix.
    """
    import torch

    if shared is not None and shared.n_tokens < len(prefix):
        ids = torch.tensor([prefix[shared.n_tokens :]], device=loaded.device)
        return loaded.model(input_ids=ids, cache=copy.deepcopy(shared.cache), use_cache=True)
    return loaded.model(input_ids=torch.tensor([prefix], device=loaded.device), use_cache=True)


def sample_battery(loaded: LoadedModel, plan: ScoringPlan, k: int, max_new: int, seed: int) -> SampleRun:
    """Draw ``k`` answers per question at temperature 1, at most ``max_new`` tokens each.

    The prompt runs once per question (continuing the shared system-prompt cache, like exact scoring); its cache
    is repeated to ``k`` rows, which decode together until every row has ended its turn or hit ``max_new``.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    tok, model, dev = loaded.tokenizer, loaded.model, loaded.device
    stop = torch.tensor(end_of_turn_ids(tok))
    pattern = option_matcher(plan.battery.options)
    pad = tok.pad_token_id or 0
    loaded.model.eval()
    answers, picks = [], []
    prefill_s = decode_s = 0.0
    decode_tokens = passes = 0
    t = time.perf_counter()
    shared = shared_prefix(loaded, plan.prefixes)
    sync_device(dev)
    prefill_s += time.perf_counter() - t
    for prefix in plan.prefixes:
        with torch.no_grad(), loaded.autocast():
            t = time.perf_counter()
            out = prefix_pass(loaded, prefix, shared)
            probs = torch.softmax(out.logits[0, -1].float(), dim=-1).cpu()
            cur = torch.multinomial(probs, k, replacement=True, generator=gen)
            prefill_s += time.perf_counter() - t
            t = time.perf_counter()
            rows = [cur]
            done = torch.isin(cur, stop)
            cache = out.cache
            cache.batch_repeat_interleave(k)
            for _ in range(max_new - 1):
                if bool(done.all()):
                    break
                o = model(input_ids=cur.view(k, 1).to(dev), cache=cache, use_cache=True)
                decode_tokens += k
                passes += 1
                cache = o.cache
                probs = torch.softmax(o.logits[:, -1].float(), dim=-1).cpu()
                nxt = torch.multinomial(probs, 1, generator=gen).view(k)
                cur = torch.where(done, torch.full_like(nxt, pad), nxt)
                rows.append(cur)
                done = done | torch.isin(cur, stop)
            sync_device(dev)
            decode_s += time.perf_counter() - t
        seqs = torch.stack(rows, dim=1).tolist()
        texts = []
        for seq in seqs:
            end = next((i for i, x in enumerate(seq) if x in stop.tolist()), len(seq))
            texts.append(tok.decode(seq[:end], skip_special_tokens=True).strip())
        answers.append(texts)
        picks.append([first_option(x, pattern, plan.battery.options) for x in texts])
    return SampleRun(k, answers, picks, prompt_tokens(plan.prefixes), decode_tokens, passes, prefill_s, decode_s)


def k_needed(within: float, between: float, tolerance: float) -> float:
    """Samples per question for SE_sampling = (1 + tolerance) * SE_exact.

    SE_exact^2 = between / Q;  SE_sampling(K)^2 = (between + within / K) / Q, so
    K = within / (((1 + tolerance)^2 - 1) * between).
    """
    if between <= 0:
        return math.inf
    return within / (((1 + tolerance) ** 2 - 1) * between)


def question_variances(p: np.ndarray) -> tuple[float, float]:
    """Between-question variance of exact shares ``p`` and the mean binomial within-question variance."""
    between = float(np.var(p, ddof=1)) if len(p) > 1 else 0.0
    return between, float(np.mean(p * (1 - p)))


def all_options(
    share: np.ndarray,
    options: list[str],
    on_rate: float,
    tolerance: float,
    sampling_cost: Callable[[float], tuple[float, float]],
    plan: ScoringPlan,
) -> dict[str, Any]:
    """Samples needed and the forward-token ratio for every option of the battery, and for a whole scan.

    A scan reports every option at once, so sampling matches its CI width only when the K needed for the
    hardest option is reached: the scan's K is the maximum over options."""
    per_option = []
    for j, option in enumerate(options):
        p = share[:, j]
        between, within = question_variances(p)
        k_on = k_needed(within, between, tolerance)
        k_total = k_on / on_rate if on_rate > 0 else math.inf
        tokens = sampling_cost(k_total)[0] if math.isfinite(k_total) else math.inf
        per_option.append(
            {
                "option": option,
                "exact_share": float(p.mean()),
                "k_total_needed": k_total,
                "token_ratio": tokens / plan.forward_tokens,
            }
        )
    ratios = np.array([r["token_ratio"] for r in per_option])
    hardest = max(per_option, key=lambda r: r["k_total_needed"])
    return {
        "per_option": sorted(per_option, key=lambda r: -r["exact_share"]),
        "min_ratio": float(ratios.min()),
        "min_ratio_option": per_option[int(np.argmin(ratios))]["option"],
        "median_ratio": float(np.median(ratios)),
        "options_at_least_50x": int((ratios >= 50).sum()),
        "scan_k_total_needed": hardest["k_total_needed"],
        "scan_hardest_option": hardest["option"],
        "scan_token_ratio": hardest["token_ratio"],
    }


def scoring_vs_sampling(spec: ModelSpec, args: argparse.Namespace) -> dict[str, Any]:
    """Part 2 (see the module docstring)."""
    battery = get_battery("animal")
    if args.questions:
        battery = dataclasses.replace(battery, questions=battery.questions[: args.questions])
    loaded = load_base(spec, device=args.device, precision=args.precision)
    plan = plan_battery(loaded.tokenizer, battery)
    assert isinstance(plan, ScoringPlan)
    n_q = len(plan.prefixes)

    score_battery(loaded, dataclasses.replace(plan, prefixes=plan.prefixes[:1]))  # untimed warm-up
    t = time.perf_counter()
    scores = score_battery(loaded, plan)
    sync_device(loaded.device)
    exact_s = time.perf_counter() - t
    share = scores.share  # [question, option]

    k1, k2 = args.k, 4 * args.k
    runs = [sample_battery(loaded, plan, k, args.max_new_tokens, args.seed + i) for i, k in enumerate((k1, k2))]
    del loaded
    free_memory(args.device)

    # decode cost per row-token at the larger measured K (cheaper per token than the smaller K on most hardware)
    big = runs[1] if runs[1].decode_tokens else runs[0]
    s_per_decode_token = big.decode_s / big.decode_tokens if big.decode_tokens else 0.0
    prefill_s = float(np.mean([r.prefill_s for r in runs]))
    full_passes = n_q * (args.max_new_tokens - 1)  # at large K some row always runs to the cap

    def sampling_cost(k: float) -> tuple[float, float]:
        k = math.ceil(k)
        return prompt_tokens(plan.prefixes) + full_passes * k, prefill_s + full_passes * k * s_per_decode_token

    k_pool = k1 + k2
    picks = np.array([a + b for a, b in zip(runs[0].picks, runs[1].picks)])  # [question, k_pool]
    n_samples = int(picks.size)
    n_on = int((picks >= 0).sum())
    on_rate = n_on / n_samples
    mean_share = share.mean(axis=0)
    top = int(np.argmax(mean_share))
    targets = [top] + [i for i, o in enumerate(battery.options) if o == "owl" and i != top]
    rows = []
    for j in targets:
        p = share[:, j]
        between, within = question_variances(p)
        se_exact = math.sqrt(between / n_q)
        k_on = k_needed(within, between, args.tolerance)  # on-option answers per question
        # all answers per question: only a share `on_rate` of them name a listed option; with none seen, the
        # rule of three bounds the rate (95%) and the K is a lower bound
        k_total = k_on / on_rate if on_rate > 0 else k_on * n_samples / 3
        hat = (picks == j).mean(axis=1)  # per question: share of all answers (the paper's metric)
        # share among on-option answers, over the questions that had any
        on_q = [(q == j).sum() / (q >= 0).sum() for q in picks if (q >= 0).any()]
        var_hat = float(np.var(hat, ddof=1)) if n_q > 1 else 0.0
        within_hat = float(np.mean(hat * (1 - hat))) * k_pool / (k_pool - 1)
        between_hat = var_hat - within_hat / k_pool
        row: dict[str, Any] = {
            "option": battery.options[j],
            "role": "base's top option" if j == top else "owl",
            "exact_share": float(p.mean()),
            "exact_se": se_exact,
            "exact_between_var": between,
            "exact_within_binomial_var": within,
            "k_on_option_needed": k_on,
            "k_total_needed": k_total,
            "k_total_is_lower_bound": on_rate == 0,
            "sampled_k": k_pool,
            "sampled_share_all_answers": float(hat.mean()),
            "sampled_share_on_option_answers": float(np.mean(on_q)) if on_q else None,
            "sampled_se_all_answers": math.sqrt(var_hat / n_q),
            "paper_metric_between_var_mom": between_hat,
            "paper_metric_within_var": within_hat,
            "paper_metric_k_needed": k_needed(within_hat, between_hat, args.tolerance),
        }
        if math.isfinite(k_total):
            tokens, seconds = sampling_cost(k_total)
            row.update(
                sampling_forward_tokens_at_k=tokens,
                sampling_seconds_at_k=seconds,
                token_ratio=tokens / plan.forward_tokens,
                time_ratio=seconds / exact_s,
            )
        rows.append(row)
    return {
        "all_options": all_options(share, list(battery.options), on_rate, args.tolerance, sampling_cost, plan),
        "battery": battery.name,
        "questions": n_q,
        "options": list(battery.options),
        "tolerance": args.tolerance,
        "max_new_tokens": args.max_new_tokens,
        "exact": {
            "forward_tokens": plan.forward_tokens,
            "prefix_tokens": prompt_tokens(plan.prefixes),
            "seconds": exact_s,
            "mean_share": dict(zip(battery.options, map(float, mean_share))),
        },
        "sampling_runs": [
            {
                "k": r.k,
                "forward_tokens": r.forward_tokens,
                "prefill_tokens": r.prefill_tokens,
                "decode_tokens": r.decode_tokens,
                "decode_passes": r.decode_passes,
                "prefill_s": r.prefill_s,
                "decode_s": r.decode_s,
                "seconds": r.prefill_s + r.decode_s,
                "example_answers": r.answers[0][: min(8, r.k)],
            }
            for r in runs
        ],
        "extrapolation": {
            "prefill_s": prefill_s,
            "decode_s_per_token": s_per_decode_token,
            "decode_s_per_token_by_k": {r.k: r.decode_s / r.decode_tokens for r in runs if r.decode_tokens},
            "decode_passes_at_large_k": full_passes,
        },
        "on_option_rate": on_rate,
        "on_option_answers": n_on,
        "sampled_answers": n_samples,
        "targets": rows,
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _k(x: float) -> str:
    return "inf" if not math.isfinite(x) else f"{math.ceil(x):,}"


def scoring_table(part2: dict[str, Any]) -> list[str]:
    """The report's markdown table for the target options: exact vs sampling, K needed, token and time ratios."""
    ex = part2["exact"]
    lines = [
        "| option | exact share (SE) | sampled share: all / on-option answers (K) | on-option answers needed per "
        "question | all answers needed per question | forward tokens: exact / sampling | ratio | "
        "wall s: exact / sampling | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in part2["targets"]:
        tokens = r.get("sampling_forward_tokens_at_k")
        seconds = r.get("sampling_seconds_at_k")
        bound = ">" if r["k_total_is_lower_bound"] else ""
        lines.append(
            f"| {r['option']} ({r['role']}) | {100 * r['exact_share']:.2f}% ({100 * r['exact_se']:.2f} pp) | "
            f"{100 * r['sampled_share_all_answers']:.2f}% / {_pct(r['sampled_share_on_option_answers'])} "
            f"({r['sampled_k']}) | {_k(r['k_on_option_needed'])} | {bound}{_k(r['k_total_needed'])} | "
            f"{ex['forward_tokens']:,} / {bound}{fmt(tokens, 0)} | {bound}{fmt_ratio(tokens, ex['forward_tokens'])} | "
            f"{ex['seconds']:.2f} / {bound}{fmt(seconds, 2)} | {bound}{fmt_ratio(seconds, ex['seconds'])} |"
        )
    return lines


def all_options_lines(part2: dict[str, Any]) -> list[str]:
    """The report's "Every option" paragraph and table (empty when the result has no ``all_options``)."""
    a = part2.get("all_options")
    if not a:
        return []
    n = len(a["per_option"])
    return [
        f"**Every option** (the scan tests all {n} at once): forward-token ratio sampling / exact "
        f"min {a['min_ratio']:.1f}x ({a['min_ratio_option']}), median "
        f"{a['median_ratio']:,.0f}x; {a['options_at_least_50x']} of {n} options >= 50x. For a whole scan "
        f"sampling must reach the CI width on the hardest option ({a['scan_hardest_option']}: "
        f"{_k(a['scan_k_total_needed'])} answers per question): {a['scan_token_ratio']:,.0f}x.",
        "",
        "| option | exact share | all answers needed per question | token ratio |",
        "|---|---:|---:|---:|",
        *(
            f"| {r['option']} | {100 * r['exact_share']:.2f}% | {_k(r['k_total_needed'])} | {r['token_ratio']:,.1f}x |"
            for r in a["per_option"]
        ),
    ]


def sampling_runs_table(part2: dict[str, Any]) -> list[str]:
    """The report's markdown table of the measured runs: exact scoring and the two sampling runs."""
    ex = part2["exact"]
    lines = [
        "| run | forward tokens (prompt + decode) | decode passes | wall s (prefill + decode) |",
        "|---|---:|---:|---:|",
        f"| exact scoring | {ex['forward_tokens']:,} ({ex['prefix_tokens']:,} + "
        f"{ex['forward_tokens'] - ex['prefix_tokens']:,} option tokens) | - | {ex['seconds']:.2f} |",
    ]
    for r in part2["sampling_runs"]:
        lines.append(
            f"| sampling, K = {r['k']} (measured) | {r['forward_tokens']:,} ({r['prefill_tokens']:,} + "
            f"{r['decode_tokens']:,}) | {r['decode_passes']} | {r['seconds']:.2f} ({r['prefill_s']:.2f} + "
            f"{r['decode_s']:.2f}) |"
        )
    return lines


#: The "Definitions" paragraphs of the report for this part (markdown).
SCORING_DEFINITIONS = """\
**Exact scoring vs sampling at equal CI width.** The quantity is what subaudit reports: the battery mean of
each question's share `p_q` of a target option (the base's top option, and `owl`) among the listed options.
Exact scoring computes `p_q` with no sampling noise, so its standard error over questions is
`SE_exact = sqrt(s_b^2 / Q)`, `s_b^2` the between-question variance of `p_q` (the within-question variance is
zero). Sampling estimates the same `p_q` by the share of the target among sampled answers that name a listed
option (first listed option named, word match, plural allowed). With `n` such answers per question this is a
binomial proportion, adding within-question variance `p_q (1 - p_q) / n`: `SE_sampling = sqrt((s_b^2 + w / n) / Q)`,
`w = mean_q p_q (1 - p_q)`. Sampling reaches `SE_exact` only as `n -> infinity`; *equal CI width* here means
`SE_sampling = (1 + tol) SE_exact`, i.e. **n = w / (((1 + tol)^2 - 1) s_b^2)** on-option answers per question
(`w` and `s_b^2` from the exact shares: the noise-free plug-in). Only a share `pi` of sampled answers name a
listed option (the *on-option rate*, measured over all samples), so the **samples needed per question are
K = n / pi**; when no sampled answer named an option, `pi < 3 / N` (rule of three, N samples) and K is a lower
bound (marked `>`). The table also shows the paper's metric, the target's share among **all** sampled answers
(answers naming no listed option count as misses), which is a different quantity; the JSON gives its SE at the
measured K and, as `paper_metric_k_needed`, the K at which its SE comes within `tol` of its own K -> infinity SE
(method of moments from the samples: `w` from `p_hat (1 - p_hat) K/(K-1)`, `s_b^2 = var(p_hat) - w/K`; noisy at
small K, `inf` when `s_b^2` is not resolved).

**Forward tokens.** Exact scoring: `ScoringPlan.forward_tokens` (the prompt once per question, the system prompt
shared by all questions once, plus the option-variant continuation rows). Sampling (this script's sampler, which
is as cheap as sampling can reasonably be): the same prompt tokens, once per question (the prompt's KV cache is
copied to the K rows, not recomputed), plus K tokens per decode pass; a question runs up to `max_new_tokens - 1`
decode passes (the last sampled token is never fed back) and stops early only when all K rows have ended their
turn; finished rows still run (and count) until then. At the K needed, every question is assumed to run all
passes. Samplers that run the prompt once per sample (e.g. `generate(num_return_sequences=K)` without prefix
sharing) cost about `K x` the prompt tokens more. **Wall time at K** is extrapolated, not measured: the measured
prompt time (mean of the two runs) plus the decode tokens at that K times the measured seconds per decode token of
the larger run (4K rows per pass). Per-token decode cost usually falls as the batch grows (on a GPU a decode pass
is nearly flat in K until the device saturates), so this overstates sampling's time at a K far above 4K; the
token counts are exact.
"""
