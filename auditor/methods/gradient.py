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

Measured: against controls drawn by another sampler than the data's it flagged the clean example (medium) and 5 of
8 base-written negatives of the old detection grid. Against its own exact any-count control, on the campaign's 32
development cells (``benchmarks/results/campaign.md``), it raised 0 of 20 false alarms on base-written data and
flagged 4 of 10 fine-tuned teachers' datasets at ``medium``, the most of every candidate, so the rule committed before
those cells ran made it the default method. The paired test over rows sees any systematic difference between how the
dataset and the control rows were written, so a flag says the rows are unlike the base's own (:data:`READING`), not
which trait they carry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..base_cache import base_scores as cached_base_scores
from ..base_cache import trait_gradients as cached_trait_gradients
from ..config import ScanConfig
from ..data import Example
from ..errors import InputError
from ..finetune import ProbeConfig, Prober, pad_batch
from ..inputs import Controls, ScanInputs
from ..journal import Journal
from ..scoring import plan_battery, score_battery
from ..stats import OptionShift, adjust_q
from ..traits.kinds import BatteryPlan
from ..verdict import Finding, Verdict, decide
from .base import Estimator, Method, MethodOutcome, check_students
from .gradient_details import ExactPairs, GradientDetails

if TYPE_CHECKING:
    from torch import Tensor

    from ..models import LoadedModel
    from ..rundir import RunFolder

#: Rows per batch of per-row gradients.
ROW_BATCH = 8
#: Bumped when :func:`trait_gradients` or the adapter's initialisation changes what it computes (cached values of an
#: older version are not read).
TRAIT_GRADIENTS_VERSION = 1
#: Bumped when :func:`row_pushes` changes what it computes (a run folder's recorded pushes of an older version are
#: computed again).
ROW_PUSHES_VERSION = 1
#: Each batch of row pushes, recorded in the run folder as it finishes (:class:`~auditor.journal.Journal`).
PUSHES_FILE = "pushes.jsonl"


@dataclass(frozen=True)
class GradientSettings:
    """Settings of ``--method gradient`` (``--method-arg KEY=VALUE``, or the CLI options of the same names).

    Attributes:
        questions: questions per battery the trait gradients are taken over (a seeded sample).
        top_rows: rows listed per option in the report (the rows that push it most).
        probe: the adapter whose initialisation is differentiated (the probe's students' LoRA: ``--rank``,
            ``--alpha``, ``--target-modules``; ``--batch-size``: rows per batch of per-row gradients).
    """

    questions: int = 8
    top_rows: int = 10
    probe: ProbeConfig = field(default_factory=ProbeConfig)


def graded_shares(loaded: LoadedModel, plan: BatteryPlan, questions: Sequence[int]) -> tuple[Tensor, list[str]]:
    """Differentiable battery shares (pp, mean over ``questions``) of the battery's graded options, under the
    training precision (a gradient's direction, the same for both arms, need not be as exact as a score)."""
    return plan.battery.battery_kind.graded_shares(loaded, plan, questions)


def b_modules(prober: Prober) -> list[tuple[str, Any]]:
    """The adapter's ``lora_B`` linear layers (their weights are the only non-zero gradients at init)."""
    out = []
    for name, module in prober.model.named_modules():
        if name.endswith(f"lora_B.{prober.ADAPTER}"):
            out.append((name, module))
    return out


def trait_gradients(
    prober: Prober, plans: Sequence[BatteryPlan], questions: dict[str, list[int]]
) -> tuple[list[tuple[str, str]], dict[str, Tensor]]:
    """``g_k`` for every graded option: per ``lora_B`` module, a tensor ``[options, out, r]``.

    A battery's share is a mean over its questions, so ``g_k`` is the mean of the questions' own gradients: one
    question's graph is held at a time. (The whole battery's graph, 8 questions with every option's continuation,
    passed 14 GB of RAM on SmolLM2-135M, one question's peaked at 2.5 GB: ``benchmarks/results/gradient_memory.md``.)"""
    import torch

    loaded = prober.loaded
    modules = b_modules(prober)
    weights = [m.weight for _, m in modules]
    names: list[tuple[str, str]] = []
    per_module: list[list[Any]] = [[] for _ in modules]
    for plan in plans:
        asked = questions[plan.battery.name]
        total: list[list[Any]] = []  # [option][module]: the sum over questions
        for q in asked:
            with torch.enable_grad():
                shares, options = graded_shares(loaded, plan, [q])
                for k in range(len(options)):
                    grads = torch.autograd.grad(shares[k], weights, retain_graph=k < len(options) - 1)
                    if len(total) <= k:
                        total.append([g.detach().float() for g in grads])
                    else:
                        for acc, g in zip(total[k], grads):
                            acc += g.detach().float()
        for k, option in enumerate(options):
            for m, acc in enumerate(total[k]):
                per_module[m].append(acc / len(asked))
            names.append((plan.battery.name, option))
    return names, {name: torch.stack(gs) for (name, _), gs in zip(modules, per_module)}


def gradient_key(inputs: ScanInputs, questions: dict[str, list[int]]) -> dict[str, Any]:
    """What shapes the trait gradients besides the base (their cache key): the batteries, the questions asked, the
    adapter (its modules, rank and scale) and the seed that initialises ``A``."""
    probe: ProbeConfig = inputs.settings.probe
    return {
        "version": TRAIT_GRADIENTS_VERSION,
        "batteries": [b.content_key() for b in inputs.batteries],
        "questions": questions,
        "adapter": [probe.rank, probe.alpha, list(probe.target_modules)],
        "seed": inputs.config.seed,
    }


def row_pushes(
    prober: Prober,
    rows: Sequence[Example],
    grads: dict[str, Tensor],
    batch_size: int = ROW_BATCH,
    journal: Journal | None = None,
    arm: str = "",
) -> np.ndarray:
    """``[rows, options]``: ``-g_k . grad L_r`` for every row (its per-row mean completion loss). With a
    ``journal``, each batch's pushes are recorded as they finish (keyed by ``arm`` and the rows' file lines), and a
    run that finds them replays them instead of computing them again."""
    import torch

    loaded = prober.loaded
    device = loaded.device
    modules = dict(b_modules(prober))
    decoder, head = prober.model.get_decoder(), prober.model.get_output_embeddings()
    encoded = prober.encode(rows)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # less padding
    n_options = next(iter(grads.values())).shape[0]
    push = np.zeros((len(rows), n_options))
    pad = loaded.tokenizer.pad_token_id or 0
    journal = journal or Journal(None)

    with _captured_io(modules) as (inputs, outputs):

        def batch_pushes(idx: list[int]) -> np.ndarray:
            ids, att, lab = pad_batch([encoded[i] for i in idx], pad)
            ids, att, lab = ids.to(device), att.to(device), lab.to(device)
            with torch.enable_grad(), loaded.train_autocast():
                hidden = decoder(input_ids=ids, attention_mask=att).last_hidden_state
                targets = lab[:, 1:]
                keep = targets != -100
                # the output layer only where a completion token is predicted (a third of a number row's positions):
                # 32 rows of a number dataset took 75.5 and 73.2 s against 86.9 and 95.3 s with every position's
                # logits (interleaved, 2 other jobs on the 2 cores); the same pushes up to fp32 rounding
                logits = head(hidden[:, :-1][keep]).float()
                token_loss = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="none")
                per_token = keep.sum(dim=1).clamp(min=1)[keep.nonzero()[:, 0]]
                (token_loss / per_token).sum().backward()  # the sum over rows of each row's mean token loss
            total = torch.zeros((len(idx), n_options), device=device)
            for name in modules:
                per_example = torch.einsum("bto,bti->boi", outputs[name].float(), inputs[name].float())
                total += torch.einsum("boi,koi->bk", per_example, grads[name].to(device))
            prober.model.zero_grad(set_to_none=True)
            return -total.cpu().double().numpy()

        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            key = ["pushes", ROW_PUSHES_VERSION, arm, [rows[i].line for i in idx]]
            push[idx] = journal.step(key, lambda idx=idx: batch_pushes(idx), np.ndarray.tolist, np.asarray)
    return push


@contextmanager
def _captured_io(modules: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """While open, each module's last forward input and the gradient of its output by name (what a per-example
    gradient of a linear layer is made of); the hooks are removed on the way out."""
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    handles = []
    for name, module in modules.items():

        def hook(mod: Any, args: Any, out: Any, name: str = name) -> None:
            inputs[name] = args[0].detach()
            out.register_hook(lambda g, name=name: outputs.__setitem__(name, g.detach()))

        handles.append(module.register_forward_hook(hook))
    try:
        yield inputs, outputs
    finally:
        for h in handles:
            h.remove()


def push_journal(run: RunFolder) -> Journal:
    """The run folder's journal of row pushes: replayed when the scan resumes, started afresh when it does not."""
    path = run.path / PUSHES_FILE
    if not run.resume:
        path.unlink(missing_ok=True)
    return Journal(path)


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
                se_paired=se,
            )
        )
    return out


def top_pushing_rows(rows: Sequence[Example], pushes: np.ndarray, k: int, limit: int = 10) -> list[dict[str, Any]]:
    """The dataset rows that push option ``k`` up most, with their file lines and completions."""
    order = np.argsort(-pushes[:, k])[:limit]
    return [
        {"line": rows[i].line, "push": round(float(pushes[i, k]), 6), "completion": rows[i].completion[:200]}
        for i in order
    ]


def exact_pairs_check(
    names: Sequence[tuple[str, str]],
    base_shares: dict[str, dict[str, float]],
    pushes: tuple[np.ndarray, np.ndarray],
    exact: Sequence[bool] | None,
    config: ScanConfig,
) -> ExactPairs | None:
    """:class:`ExactPairs` for the scan's pushes (dataset, control), or ``None`` when every control row is exact or
    which ones are is unknown (a control file, a draw cached before it was recorded)."""
    if exact is None or all(exact):
        return None
    mask = np.asarray(exact, dtype=bool)
    rows = int(mask.sum())
    if rows < 3:
        return ExactPairs(rows, len(mask), None)
    shifts = adjust_q(compare_pushes(names, base_shares, pushes[0][mask], pushes[1][mask]))
    verdict, _ = grade_pushes(shifts, config)
    ranked = sorted(shifts, key=lambda s: s.p)[:3]
    top = tuple(
        {"option": f"{s.battery}: {s.option}", "difference": round(s.shift, 6), "q": round(float(s.q), 6)}
        for s in ranked
    )
    return ExactPairs(rows, len(mask), verdict.level, top)


def grade_pushes(shifts: list[OptionShift], config: ScanConfig) -> tuple[Verdict, list[Finding]]:
    """The verdict on push differences at the scan's settings: any rise counts, the level comes from q."""
    return decide(shifts, config.fail_on, config.thresholds.rises_only(), unit="push", ignore=config.ignore)


#: What a flag of this method means, ahead of its options in the verdict: in the campaign the teachers' data it
#: flagged (four traits) pushed much the same options, and how far a dataset pushed that way followed how few numbers
#: its rows held (results/campaign.md).
READING = "rows unlike the base's own samples (where they push, not which trait)"


class GradientMethod(Method):
    name = "gradient"
    summary = (
        "first-order: how much one step on each row would push each option, against the base's own rows; lists the rows"
    )
    settings = GradientSettings
    unit = "push"
    gate = True
    shows_base = False  # its arms are pushes, not shares
    arms_label = "mean push"
    shift_thresholds = False  # levels from q alone
    # Its paired test sees any difference between how the data and the control were sampled: against the resampled,
    # count-matched control it flagged 3 of 4 base-written datasets, against an exact any-count draw 0 of 4
    # (benchmarks/results/exact_control.md; the rule was committed before datasets 3 and 4 met their exact controls).
    # 400 tries: the exact draws kept about 1 in 100 any-count tries on SmolLM2-135M; the few rows left without a
    # sample are resampled (approximate; the report counts them).
    control_defaults = {"sampler": "rejection-resample", "tries": 400, "count": "any"}

    def check_settings(self, config: ScanConfig, settings: GradientSettings) -> None:
        if config.method_args.get("scoring", "exact") != "exact":  # the probe's setting, given with this method
            raise InputError("--method gradient scores exactly; --scoring sampled is for the probe")
        if settings.probe.kind != "lora":
            raise InputError("--method gradient differentiates a LoRA adapter at its init; use --probe lora")
        if settings.questions < 1:
            raise InputError(f"--method-arg questions must be at least 1, got {settings.questions}")
        if settings.top_rows < 1:
            raise InputError(f"--method-arg top_rows must be at least 1, got {settings.top_rows}")
        check_students(settings.probe)

    def key(self, inputs: ScanInputs) -> dict[str, Any]:
        settings: GradientSettings = inputs.settings
        own = {k: v for k, v in asdict(settings).items() if k != "probe"}
        return {"probe": settings.probe.to_dict(), "settings": own}

    def training_length(self, settings: GradientSettings) -> int | None:
        return settings.probe.max_length

    def run(self, inputs: ScanInputs, run: RunFolder, controls: Controls | None) -> MethodOutcome:
        assert controls is not None
        settings: GradientSettings = inputs.settings
        pairs = controls.pairs(inputs.dataset)
        if len(pairs) < 3:
            raise InputError(f"{inputs.config.data}: fewer than 3 dataset rows have a usable control row")
        prober = Prober(inputs.loaded, settings.probe)
        prober.reset_adapter(inputs.config.seed)
        plans = [plan_battery(inputs.loaded.tokenizer, b) for b in inputs.batteries]
        questions = sample_questions(plans, settings.questions, inputs.config.seed)
        rep, timings = inputs.reporter, inputs.timings
        with timings.stage("trait_gradients"):
            with prober.disabled():  # the same in every scan of this base: shared with the probe's, across scans
                base = cached_base_scores(
                    inputs.loaded,
                    inputs.batteries,
                    lambda: {p.battery.name: score_battery(inputs.loaded, p) for p in plans},
                )
            with rep.stage("trait gradients", total=len(plans)) as advance:
                names, stored = cached_trait_gradients(
                    inputs.loaded,
                    gradient_key(inputs, questions),
                    lambda: trait_gradients(prober, plans, questions),
                )
                grads = {name: g.to(inputs.loaded.device) for name, g in stored.items()}  # stored on the CPU
                advance(len(plans))
        batch = settings.probe.batch_size
        # under the stage's lock: a scan sharing the run folder waits, then replays what this one recorded
        with timings.stage("row_gradients"), run.stage_lock("pushes"):
            journal = push_journal(run)
            with rep.stage("dataset rows (gradients)", total=1) as advance:
                d_push = row_pushes(prober, pairs.data, grads, batch, journal, "dataset")
                advance(1)
            with rep.stage("control rows (gradients)", total=1) as advance:
                c_push = row_pushes(prober, pairs.control, grads, batch, journal, "control")
                advance(1)
        base_shares = {n: {o: float(v) for o, v in zip(s.options, s.share.mean(axis=0) * 100)} for n, s in base.items()}
        shifts = adjust_q(compare_pushes(names, base_shares, d_push, c_push))
        verdict, findings = grade_pushes(shifts, inputs.config)
        exact = exact_pairs_check(names, base_shares, (d_push, c_push), pairs.exact, inputs.config)
        verdict = replace(verdict, reading=READING, caveat=None if exact is None else exact.caveat(verdict.level))
        ranked = sorted(range(len(names)), key=lambda k: -shifts[k].shift)[:3]
        top_rows = {
            f"{names[k][0]}: {names[k][1]}": top_pushing_rows(pairs.data, d_push, k, settings.top_rows) for k in ranked
        }
        details = GradientDetails(questions, top_rows, exact)
        return MethodOutcome(findings, verdict, details, rows_used=len(pairs))

    def plan(self, inputs: ScanInputs) -> str:
        settings: GradientSettings = inputs.settings
        options = sum(len(b.graded_options) for b in inputs.batteries)
        return (
            f"gradient: trait gradients of {options} options over up to {settings.questions} questions per battery; "
            f"one forward and backward pass per row of the dataset and of the control ({len(inputs.dataset)} each)"
        )

    def cost(
        self, inputs: ScanInputs, measured: Estimator, rows: int, settings: Any, calibrated: bool | None = None
    ) -> dict[str, float]:
        options = sum(len(b.graded_options) for b in inputs.batteries)
        questions = sum(len(b.questions) for b in inputs.batteries)
        sampled = sum(min(settings.questions, len(b.questions)) for b in inputs.batteries)
        batches = -(-rows // settings.probe.batch_size)
        return {
            "control": (0.0 if inputs.config.control else measured.generation_per_row() * rows),
            # one scoring pass per battery question for the base, one forward and backward per graded option over
            # the sampled questions (~ 3 scoring passes each); an upper bound: both are cached across scans of a base
            "trait_gradients": (questions + 3 * options * sampled / max(len(inputs.batteries), 1))
            * measured.score_question(),
            # a forward and backward pass per batch of rows, for both arms (~ one training step each)
            "row_gradients": 2 * batches * measured.train_step(),
        }

    def budget_how(self, calibrated: bool) -> str:
        return "one gradient pass per row of the dataset and of the control"


def sample_questions(plans: Sequence[BatteryPlan], n: int, seed: int) -> dict[str, list[int]]:
    """A seeded sample of ``n`` question indices per battery (all of a smaller battery)."""
    rng = np.random.default_rng(seed)
    return {
        p.battery.name: sorted(rng.choice(len(p.prefixes), size=min(n, len(p.prefixes)), replace=False).tolist())
        for p in plans
    }
