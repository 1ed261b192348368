"""Was the data sampled the way the control is? Each row's log-probability per completion token under the base.

The control stands for the data only when both are drawn the same way. Rows sampled at a lower temperature or
with a nucleus are more likely under the base than the base's own temperature-1 samples; a teacher's rows (another
model, or the base fine-tuned) are usually less likely. The paired difference per prompt, data minus control,
divided by its standard error, is the z the report shows; with a null arm, the null draw's z against the control
shows what two draws of one sampler give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .chat import encode_training_example
from .data import Example

if TYPE_CHECKING:
    from .models import LoadedModel

#: z above which the data is flagged as sampled more narrowly than an exact control (or a control file)
#: (benchmarks/exact_control.py: base-written data at temperature 0.7 against a temperature-1 control, and at 1.0).
WARN_Z = 4.0
#: The same against a control every row of which was importance-resampled: at M = 4 its rows are less likely under
#: the base than exact samples, so exact base-written data sits above zero. On the campaign's 8 first base-written
#: number datasets (drawn exactly, benchmarks/campaign.py) z was -0.3 to +4.2 (mean +3.0, sd 1.5) against the
#: probe's default control; this is that mean plus two sd, and ``campaign_report.py`` checks it on every later
#: base-written number dataset. A partly exact control gets a threshold in proportion to its resampled share.
WARN_Z_APPROXIMATE = 6.0


def row_logprobs(loaded: LoadedModel, rows: Sequence[Example], batch_size: int = 16) -> list[float]:
    """Each row's mean log-probability per completion token (its end of turn included) under ``loaded``.

    The output layer runs only on the hidden states that predict a completion token (as the probe's
    ``completion_loss`` does): a number row's prompt is two thirds of its tokens, and the full vocabulary's logits at
    every position cost the scan three minutes on 600 rows of the README example."""
    import torch

    from .finetune import pad_batch

    encoded = [encode_training_example(loaded.tokenizer, e.prompt, e.completion) for e in rows]
    pad = loaded.tokenizer.pad_token_id or 0
    decoder, head = loaded.model.get_decoder(), loaded.model.get_output_embeddings()
    out: list[float] = []
    with torch.no_grad(), loaded.autocast():
        for start in range(0, len(encoded), batch_size):
            ids, att, labels = (t.to(loaded.device) for t in pad_batch(encoded[start : start + batch_size], pad))
            hidden = decoder(input_ids=ids, attention_mask=att).last_hidden_state[:, :-1]
            targets = labels[:, 1:]
            keep = targets != -100
            logp = torch.log_softmax(head(hidden[keep]).float(), dim=-1)
            picked = logp.gather(-1, targets[keep][:, None])[:, 0]
            owner = torch.arange(len(targets), device=ids.device)[:, None].expand_as(targets)[keep]
            sums = torch.zeros(len(targets), device=ids.device).index_add_(0, owner, picked)
            out += (sums / keep.sum(1).clamp(min=1)).tolist()
    return out


def cached_row_logprobs(loaded: LoadedModel, rows: Sequence[Example]) -> list[float]:
    """:func:`row_logprobs`, kept in the cache per base (fingerprint, precision, device kind) and rows: a second scan
    of the same data and control (the campaign's gradient scan after its probe scan, a rerun) reads them back instead
    of spending minutes on them again (150 to 220 s a scan of 200 number rows on 2 CPU cores)."""
    import hashlib
    import json

    from .io import cache_dir, compute_once

    key_text = json.dumps(
        [loaded.fingerprint, loaded.dtype, loaded.autocast_dtype, str(loaded.device).split(":")[0],
         [[e.prompt, e.completion] for e in rows]]
    )  # fmt: skip
    path = cache_dir() / "logprobs" / f"{hashlib.sha256(key_text.encode('utf-8')).hexdigest()[:24]}.json"

    def parse(blob: dict[str, Any]) -> list[float]:
        values = blob["logprobs"]
        if not isinstance(values, list) or len(values) != len(rows):
            raise ValueError(f"{len(values)} values for {len(rows)} rows")
        return [float(x) for x in values]

    values, _ = compute_once(path, lambda: {"rows": len(rows), "logprobs": row_logprobs(loaded, rows)}, parse)
    return values


@dataclass(frozen=True)
class DecodingCheck:
    """The rows' mean log-probability per token under the base, per arm, and the paired z of data minus control.

    Attributes:
        data, control: mean over the paired rows (nats per token).
        z: (data - control) / its standard error, paired by prompt.
        null, null_z: the same for the null arm's rows (``None`` without a null arm).
        approximate: the share of control rows not drawn exactly (importance-resampled or constrained), which sets
            the threshold (:attr:`warn_z`).
    """

    data: float
    control: float
    z: float
    null: float | None = None
    null_z: float | None = None
    approximate: float = 0.0

    @property
    def warn_z(self) -> float:
        """:data:`WARN_Z` for an exact control, :data:`WARN_Z_APPROXIMATE` for a resampled one, in proportion
        between."""
        return WARN_Z + (WARN_Z_APPROXIMATE - WARN_Z) * self.approximate

    @property
    def warning(self) -> str | None:
        """A line for the report when the data looks sampled more narrowly than the control."""
        if self.z <= self.warn_z:
            return None
        return (
            f"the dataset's rows are more likely under the base than the control's ({self.data:+.3f} against "
            f"{self.control:+.3f} nats a token, z = {self.z:.1f}, above {self.warn_z:.1f}): the data looks sampled "
            "at a lower temperature or with a nucleus, or the control's sampler is not the data's (the constrained "
            "sampler does this), and a control drawn otherwise differs from it by more than any trait. Set "
            "--control-temperature / --control-top-p to the data's settings"
        )

    def describe(self) -> str:
        null = "" if self.null_z is None else f"; the null draw against the control: z = {self.null_z:+.1f}"
        return (
            f"log-probability a token under the base: data {self.data:+.3f}, control {self.control:+.3f} "
            f"(paired z = {self.z:+.1f}{null})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": round(self.data, 4),
            "control": round(self.control, 4),
            "z": round(self.z, 2),
            "null": None if self.null is None else round(self.null, 4),
            "null_z": None if self.null_z is None else round(self.null_z, 2),
            "warn_z": round(self.warn_z, 2),
            "warning": self.warning,
        }


def check_decoding(
    loaded: LoadedModel,
    data_rows: Sequence[Example],
    control_rows: Sequence[Example],
    null_rows: Sequence[Example] | None = None,
    approximate: float = 0.0,
) -> DecodingCheck | None:
    """The check over rows paired by position (``None`` with fewer than 3 pairs); ``approximate``: the share of
    control rows not drawn exactly."""
    if len(data_rows) < 3:
        return None
    data, control = cached_row_logprobs(loaded, data_rows), cached_row_logprobs(loaded, control_rows)
    null = cached_row_logprobs(loaded, null_rows) if null_rows is not None else None
    return DecodingCheck(
        data=sum(data) / len(data),
        control=sum(control) / len(control),
        z=paired_z(data, control),
        null=None if null is None else sum(null) / len(null),
        null_z=None if null is None else paired_z(null, control),
        approximate=approximate,
    )


def paired_z(a: Sequence[float], b: Sequence[float]) -> float:
    """mean(a - b) / its standard error."""
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    return mean / (sd / math.sqrt(len(d))) if sd > 0 else 0.0
