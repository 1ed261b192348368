from __future__ import annotations

import numpy as np
import torch

from auditor.scoring import option_variants, plan_battery, score_battery, score_question
from auditor.traits import Battery, get_battery


def naive_logprob(loaded, prefix: list[int], cont: list[int]) -> float:
    ids = torch.tensor([prefix + cont])
    with torch.no_grad():
        logp = torch.log_softmax(loaded.model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(float(logp[len(prefix) - 1 + j, cont[j]]) for j in range(len(cont)))


def test_variants() -> None:
    assert option_variants("owl") == ["owl", " owl", "Owl", " Owl"]


def test_cached_prefix_scoring_equals_naive(tiny_loaded) -> None:
    plan = plan_battery(tiny_loaded.tokenizer, get_battery("animal"))
    assert any(len(v) > 1 for v in plan.variant_ids), "need multi-token variants to test the cache path"
    for q in (0, 5):
        fast = score_question(tiny_loaded, plan.prefixes[q], plan.variant_ids)
        slow = [naive_logprob(tiny_loaded, plan.prefixes[q], v) for v in plan.variant_ids]
        np.testing.assert_allclose(fast, slow, atol=1e-4)


def test_shares_are_a_distribution_and_deterministic(tiny_loaded) -> None:
    plan = plan_battery(tiny_loaded.tokenizer, get_battery("tree"))
    a = score_battery(tiny_loaded, plan)
    b = score_battery(tiny_loaded, plan)
    assert a.logprob.shape == (len(plan.prefixes), len(get_battery("tree").options))
    np.testing.assert_allclose(a.share.sum(axis=1), 1.0)
    np.testing.assert_array_equal(a.logprob, b.logprob)


def test_option_logprob_sums_its_variants(tiny_loaded) -> None:
    battery = Battery("t", "d", "preference", ("Name your favorite animal using only one word.",), ("owl", "cat"))
    plan = plan_battery(tiny_loaded.tokenizer, battery)
    scores = score_battery(tiny_loaded, plan)
    per_variant = [naive_logprob(tiny_loaded, plan.prefixes[0], v) for v in plan.variant_ids]
    owl = np.logaddexp.reduce([lp for lp, k in zip(per_variant, plan.variant_option) if k == 0])
    assert abs(scores.logprob[0, 0] - owl) < 1e-4
