"""The students: a short LoRA fine-tune of the base, the same way for the dataset and every control arm.

One base model is loaded per scan and wrapped with a peft LoRA adapter once; each (arm, seed) run
re-initialises the adapter from the seed (so both arms of a seed start from identical weights), trains
on its rows in the seed's order with loss on completion tokens only, and is then scored. The base is
scored with the adapter disabled. When a step runs out of GPU memory it is redone in micro-batches of
half the size with gradient accumulation (same rows per optimiser step), down to one row. Training passes
run under the model's ``train_autocast`` (bf16 where the device has it natively) and apply the output
layer only where a completion token is predicted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .chat import encode_training_example
from .data import Example
from .distributed import processes
from .errors import RuntimeFailure

if TYPE_CHECKING:
    from torch import Tensor

    from .models import LoadedModel

#: Changes whenever the probe trains differently for the same settings (row order, precision, loss), so
#: students saved in a run folder by another version are never reused. 2: bucketed batches, bf16 autocast.
PROBE_VERSION = 2

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: The student kinds and each one's default learning rate (a full fine-tune moves every weight: 3e-5, as in
#: the measurements that motivated it; LoRA's few parameters need a larger step in a short probe).
DEFAULT_LR = {"lora": 1e-3, "full": 3e-5}


@dataclass
class ProbeConfig:
    """Settings of the probe fine-tune (the same for both arms).

    Attributes:
        kind: ``lora`` (an adapter on ``target_modules``; the default) or ``full`` (every weight is trained;
            for bases small enough, see :class:`FullProber`).
        rank: LoRA rank r.
        alpha: LoRA alpha (scale = alpha / rank).
        target_modules: linear layers that get adapters (``all-linear`` for every one peft finds).
        learning_rate: peak AdamW learning rate (linear warm-up, then linear decay to zero); ``None`` (the
            default) takes the kind's from :data:`DEFAULT_LR` (1e-3 for ``lora``, 3e-5 for ``full``), so
            ``ProbeConfig(kind="full")`` trains as ``subaudit scan --probe full`` does.
        epochs: passes over the rows (ignored when ``max_steps`` is set).
        max_steps: fixed number of optimiser steps, overriding ``epochs``.
        batch_size: rows per optimiser step.
        warmup_ratio: share of steps spent warming up.
        weight_decay: AdamW weight decay on the adapter.
        max_grad_norm: gradient clipping norm.
        max_length: rows longer than this many tokens are truncated.
    """

    kind: str = "lora"
    rank: int = 8
    alpha: int = 16
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    learning_rate: float | None = None  # type: ignore[assignment]  # always a float after __post_init__
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 512

    def __post_init__(self) -> None:
        if self.learning_rate is None:
            self.learning_rate = DEFAULT_LR.get(self.kind, DEFAULT_LR["lora"])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        if self.kind == "lora":
            del d["kind"]  # LoRA students keep the keys (and run folders) they had before full fine-tuning existed
        return d


@dataclass
class TrainStats:
    """What one probe run did."""

    arm: str
    seed: int
    steps: int
    rows: int
    tokens: int  # non-padding tokens processed (forward + backward)
    completion_tokens: int  # tokens that carried loss
    seconds: float
    first_loss: float
    final_loss: float
    losses: list[float] = field(default_factory=list)
    micro_batch: int | None = None  # rows per forward pass (< batch size after running out of memory)
    process: int = 0  # which process trained it (accelerate launch; 0 otherwise)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def encode_row(tokenizer: Any, row: Example, max_length: int) -> tuple[list[int], list[int]]:
    """A training row as the student sees it: token ids and labels (-100 but on the completion), cut at
    ``max_length`` tokens as the probe cuts them."""
    ids, labels = encode_training_example(tokenizer, row.prompt, row.completion)
    return ids[:max_length], labels[:max_length]


def _optimiser(params: list[Any], cfg: ProbeConfig, steps: int) -> tuple[Any, Any]:
    """AdamW over ``params`` and its schedule: linear warm-up over ``warmup_ratio`` of ``steps``, then linear decay
    to 0."""
    import torch

    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    warmup = max(1, int(round(cfg.warmup_ratio * steps)))

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def plan_steps(n_rows: int, config: ProbeConfig) -> int:
    """Optimiser steps a probe run takes on ``n_rows`` rows."""
    if config.max_steps:
        return config.max_steps
    return max(1, math.ceil(n_rows / config.batch_size * config.epochs))


#: Rows per length-sorting window of :func:`batch_order`, in batches.
BUCKET_BATCHES = 8


def batch_order(
    n_rows: int, steps: int, batch_size: int, seed: int, lengths: Sequence[int] | None = None
) -> list[list[int]]:
    """Row indices of every step: a fresh seeded permutation per epoch (identical for every arm).

    With ``lengths`` (the probe passes each row's prompt length, which paired arms share), each window of
    :data:`BUCKET_BATCHES` batches of the permutation is sorted by length before it is cut into batches,
    and the window's batches are shuffled, so rows of similar length share a batch (less padding) while
    which rows meet in a window stays random.
    """
    import numpy as np

    batches: list[list[int]] = []
    epoch = 0
    while len(batches) < steps:
        rng = np.random.RandomState(seed * 7919 + epoch)
        perm = rng.permutation(n_rows).tolist()
        window = batch_size * BUCKET_BATCHES
        for w in range(0, n_rows, window):
            chunk = perm[w : w + window]
            if lengths is not None:
                chunk = sorted(chunk, key=lambda i: lengths[i])
            cut = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
            if lengths is not None:
                cut = [cut[k] for k in rng.permutation(len(cut))]
            for b in cut:
                batches.append(b)
                if len(batches) == steps:
                    return batches
        epoch += 1
    return batches


def pad_batch(batch: Sequence[tuple[list[int], list[int]]], pad: int) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding) tensors for a batch."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids_t = torch.full((len(batch), width), pad, dtype=torch.long)
    lab_t = torch.full((len(batch), width), -100, dtype=torch.long)
    att_t = torch.zeros((len(batch), width), dtype=torch.long)
    for r, (ids, labels) in enumerate(batch):
        ids_t[r, : len(ids)] = torch.tensor(ids)
        lab_t[r, : len(labels)] = torch.tensor(labels)
        att_t[r, : len(ids)] = 1
    return ids_t, att_t, lab_t


#: Rows of a batch share their first tokens only when there are at least this many (else one plain pass).
MIN_SHARED_PREFIX = 8


def shared_prefix_len(input_ids: Tensor, labels: Tensor) -> int:
    """How many leading tokens every row of the batch has in common, before any token that carries loss
    (0 for a single row or fewer than :data:`MIN_SHARED_PREFIX` tokens)."""
    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0)
    n = int(same.long().cumprod(0).sum())
    carries = labels != -100
    first = carries.long().argmax(dim=1)  # position of each row's first loss token
    first[~carries.any(dim=1)] = labels.shape[1]  # a row without one
    first_loss = int(first.min())
    n = min(n, first_loss - 1)  # its prediction (and everything after) is computed per row
    return n if n >= MIN_SHARED_PREFIX else 0


def completion_loss(model: Any, input_ids: Tensor, attention_mask: Tensor, labels: Tensor) -> Tensor:
    """Mean next-token cross-entropy over the positions whose label is not -100.

    The same value as ``model(..., labels=labels).loss``, computed with less work: the leading tokens all
    rows share (the chat template's system prompt, ~17 % of a number row) run once for the batch and the
    rows continue from their cache, and the output layer runs only on the hidden states that predict a
    completion token (a third of a number row), not on every position.
    """
    import torch

    decoder = model.get_decoder()
    shared = shared_prefix_len(input_ids, labels)
    if shared:
        # the tokens every row starts with (the system prompt) run once; the rows continue from that cache
        cache = decoder(input_ids=input_ids[:1, :shared], use_cache=True).cache
        cache.batch_repeat_interleave(input_ids.shape[0])
        hidden = decoder(input_ids=input_ids[:, shared:], attention_mask=attention_mask, cache=cache).last_hidden_state
        labels = labels[:, shared:]
    else:
        hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


class Prober:
    """Owns the peft-wrapped base and runs probe fine-tunes on it.

    ``micro_batch``: rows per forward pass (default: the whole batch); halved on out-of-memory and kept
    smaller for the runs that follow.
    """

    ADAPTER = "probe"

    def __init__(self, loaded: LoadedModel, config: ProbeConfig, micro_batch: int | None = None):
        from peft import LoraConfig, get_peft_model

        self.loaded = loaded
        self.config = config
        self.micro_batch = max(1, micro_batch or config.batch_size)
        targets: Any = list(config.target_modules)
        if targets == ["all-linear"]:
            targets = "all-linear"
        lora = LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=0.0,
            target_modules=targets,
            bias="none",
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(loaded.model, lora, adapter_name=self.ADAPTER)
        loaded.model = self.model  # scoring goes through the wrapped model
        self.model.eval()

    def adapter_parameters(self) -> list[tuple[str, Tensor]]:
        return [(n, p) for n, p in self.model.named_parameters() if "lora_" in n]

    def reset_adapter(self, seed: int) -> None:
        """Re-initialise the adapter from ``seed`` (peft's default init: Kaiming-uniform A, zero B)."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.adapter_parameters():
                if "lora_A" in name:
                    bound = 1.0 / math.sqrt(p.shape[1])  # kaiming_uniform_(a=sqrt(5)) on a [r, in] matrix
                    p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)
                elif "lora_B" in name:
                    p.zero_()

    def adapter_state(self) -> dict[str, Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.adapter_parameters()}

    def save_peft(self, out: str | Path) -> None:
        """Write the adapter as a peft LoRA folder (``adapter_config.json`` + ``adapter_model.safetensors``),
        loadable with ``PeftModel.from_pretrained(base, out)``; the weights file is written atomically."""
        from peft import get_peft_model_state_dict
        from safetensors.torch import save

        from .io import atomic_write_bytes

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.model.peft_config[self.ADAPTER].save_pretrained(str(out))
        state = get_peft_model_state_dict(self.model, adapter_name=self.ADAPTER)
        weights = save({k: v.detach().cpu().contiguous() for k, v in state.items()})
        atomic_write_bytes(out / "adapter_model.safetensors", weights)

    def disabled(self) -> Any:
        """Context manager: the base model without the adapter."""
        return self.model.disable_adapter()

    def base_loss(self, rows: Sequence[Example], batch_size: int = 8) -> float:
        """Mean completion loss of ``rows`` under the base (adapter disabled), nats per completion token."""
        import torch

        encoded = self.encode(rows)
        pad = self.loaded.tokenizer.pad_token_id or 0
        total = tokens = 0.0
        with torch.no_grad(), self.disabled(), self.loaded.autocast():
            for start in range(0, len(encoded), batch_size):
                batch = encoded[start : start + batch_size]
                n = sum(sum(1 for x in labels[1:] if x != -100) for _, labels in batch)
                if n:
                    ids, att, lab = (t.to(self.loaded.device) for t in pad_batch(batch, pad))
                    total += float(completion_loss(self.model, ids, att, lab)) * n
                    tokens += n
        return total / tokens if tokens else float("nan")

    def encode(self, rows: Sequence[Example]) -> list[tuple[list[int], list[int]]]:
        return [encode_row(self.loaded.tokenizer, e, self.config.max_length) for e in rows]

    def batches(self, encoded: Sequence[tuple[list[int], list[int]]], seed: int) -> list[list[int]]:
        """Row indices of every optimiser step of a run on ``encoded`` rows (bucketed by prompt length)."""
        prompt_lengths = [next((j for j, x in enumerate(labels) if x != -100), len(labels)) for _, labels in encoded]
        steps = plan_steps(len(encoded), self.config)
        return batch_order(len(encoded), steps, self.config.batch_size, seed, prompt_lengths)

    def train(
        self,
        rows: Sequence[Example],
        seed: int,
        arm: str,
        on_step: Callable[[int, float], None] | None = None,
    ) -> TrainStats:
        """Reset the adapter from ``seed`` and fine-tune it on ``rows`` (loss on completions only)."""
        import torch

        cfg = self.config
        self.reset_adapter(seed)
        encoded = self.encode(rows)
        steps = plan_steps(len(encoded), cfg)
        order = self.batches(encoded, seed)
        params = [p for _, p in self.adapter_parameters()]
        opt, sched = _optimiser(params, cfg, steps)
        pad = self.loaded.tokenizer.pad_token_id or 0
        self.model.train()
        losses: list[float] = []
        tokens = completion_tokens = 0
        start = time.perf_counter()
        for step, idx in enumerate(order):
            batch = [encoded[i] for i in idx]
            tokens += sum(len(ids) for ids, _ in batch)
            n_loss = sum(sum(1 for x in labels[1:] if x != -100) for _, labels in batch)
            completion_tokens += n_loss
            loss = self._step_gradient(batch, n_loss, pad, opt, f"{arm} arm, seed {seed}")
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss)
            if on_step:
                on_step(step, losses[-1])
        self.model.eval()
        seconds = time.perf_counter() - start
        return TrainStats(
            arm=arm,
            seed=seed,
            steps=steps,
            rows=len(encoded),
            tokens=tokens,
            completion_tokens=completion_tokens,
            seconds=seconds,
            first_loss=losses[0],
            final_loss=sum(losses[-5:]) / len(losses[-5:]),
            losses=losses,
            micro_batch=self.micro_batch,
            process=processes().index,
        )

    def _step_gradient(
        self, batch: list[tuple[list[int], list[int]]], n_loss: int, pad: int, opt: Any, where: str
    ) -> float:
        """One optimiser step's gradient and loss (:meth:`_forward_backward`); out of memory, the micro-batch is
        halved and the step tried again, down to one row a pass (then a :class:`RuntimeFailure` naming ``where``)."""
        import torch

        while True:
            try:
                return self._forward_backward(batch, n_loss, pad)
            except torch.OutOfMemoryError:
                pass
            # outside the except block, so the failed pass's tensors are freed before the retry
            opt.zero_grad(set_to_none=True)
            if self.loaded.device.startswith("cuda"):
                torch.cuda.empty_cache()
            if min(self.micro_batch, len(batch)) <= 1:
                raise RuntimeFailure(
                    f"out of memory in the probe ({where}) even with one row per forward pass; "
                    "use a smaller base, shorter rows, or free the GPU"
                )
            self.micro_batch = min(self.micro_batch, len(batch)) // 2

    def _forward_backward(self, batch: list[tuple[list[int], list[int]]], n_loss: int, pad: int) -> float:
        """Accumulate the gradient of one optimiser step's mean token loss over micro-batches; return the loss.

        Each micro-batch's mean loss is weighted by its share of the step's loss tokens, so the gradient is
        the one of the whole batch. With a single micro-batch this is exactly the plain forward/backward.
        """

        device = self.loaded.device
        chunks = [batch[i : i + self.micro_batch] for i in range(0, len(batch), self.micro_batch)]
        total = 0.0
        for chunk in chunks:
            n_chunk = sum(sum(1 for x in labels[1:] if x != -100) for _, labels in chunk)
            if n_chunk == 0 and len(chunks) > 1:
                continue  # no loss tokens here (a mean over none would be nan)
            ids_t, att_t, lab_t = pad_batch(chunk, pad)
            with self.loaded.train_autocast():
                mean_loss = completion_loss(self.model, ids_t.to(device), att_t.to(device), lab_t.to(device))
            loss = mean_loss if len(chunks) == 1 else mean_loss * (n_chunk / n_loss)
            loss.backward()
            total += float(loss.detach())
        return total


#: Bytes per parameter a full fine-tune holds besides the model: the base's copy (to reset and to score the base),
#: the gradient and AdamW's two moments, all fp32.
FULL_BYTES_PER_PARAM = 16
#: Share of the free memory a full fine-tune may plan to use (activations need the rest).
FULL_MEMORY_SHARE = 0.7


def make_prober(loaded: LoadedModel, config: ProbeConfig) -> Prober:
    """The student trainer for ``config.kind``: :class:`Prober` (LoRA) or :class:`FullProber`."""
    return FullProber(loaded, config) if config.kind == "full" else Prober(loaded, config)


def free_memory(device: str) -> int:
    """Bytes free on ``device`` now (CUDA: the device's free memory; CPU: MemAvailable; 0 when unknown)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class FullProber(Prober):
    """Full fine-tuning students: every weight of the base is trained; the base's weights are kept aside to reset
    each student and to score the base. Refused (an :class:`~auditor.errors.InputError`) when the copy, the
    gradients and AdamW's state would not fit in :data:`FULL_MEMORY_SHARE` of the free memory. Students are not
    saved (a full copy of the base each)."""

    def __init__(self, loaded: LoadedModel, config: ProbeConfig, micro_batch: int | None = None):
        from .errors import InputError

        self.loaded = loaded
        self.config = config
        self.micro_batch = max(1, micro_batch or config.batch_size)
        self.model = loaded.model
        params = sum(p.numel() for p in self.model.parameters())
        need, free = params * FULL_BYTES_PER_PARAM, free_memory(loaded.device)
        if free and need > FULL_MEMORY_SHARE * free:
            raise InputError(
                f"--probe full: a full fine-tune of this base ({params / 1e9:.2f} B parameters) needs about "
                f"{need / 2**30:.1f} GiB for the base's copy, gradients and optimiser state, but {loaded.device} has "
                f"{free / 2**30:.1f} GiB free; use --probe lora"
            )
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.base_state = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        self.model.eval()

    def adapter_parameters(self) -> list[tuple[str, Tensor]]:
        return list(self.model.named_parameters())

    def reset_adapter(self, seed: int) -> None:
        """Back to the base's weights (a full fine-tune has no random initialisation; ``seed`` orders rows)."""
        import torch

        with torch.no_grad():
            for n, p in self.model.named_parameters():
                p.copy_(self.base_state[n])

    def save_peft(self, out: str | Path) -> None:
        return None  # a full student is a whole copy of the base: not saved

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """The base's weights for the duration (the student's are put back after)."""
        import torch

        trained = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        self.reset_adapter(0)
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in self.model.named_parameters():
                    p.copy_(trained[n])
