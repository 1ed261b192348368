from __future__ import annotations

import numpy as np
import pytest
import torch

from auditor import scoring
from auditor.scoring import (
    ChoicePlan,
    continuation_logprobs,
    option_variants,
    plan_battery,
    score_battery,
    score_question,
)
from auditor.traits import Battery, get_battery, parse_battery


def naive_token_logprobs(loaded, prefix: list[int], cont: list[int]) -> list[float]:
    """Each token's log-probability from one plain forward pass over the whole sequence (no cache)."""
    ids = torch.tensor([prefix + cont])
    with torch.no_grad():
        logp = torch.log_softmax(loaded.model(input_ids=ids).logits[0].float(), dim=-1)
    return [float(logp[len(prefix) - 1 + j, cont[j]]) for j in range(len(cont))]


def naive_logprob(loaded, prefix: list[int], cont: list[int]) -> float:
    return sum(naive_token_logprobs(loaded, prefix, cont))


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


CHOICE = {
    "name": "tiny-choice",
    "kind": "choice",
    "description": "d",
    "trait_label": "bad",
    "items": [
        {
            "question": "Which animal do you love most? Answer in one word.",
            "answers": [
                {"text": "The owl, because it is wise and quiet at night.", "label": "good"},
                {"text": "Cat", "label": "bad"},
                {"text": "A dolphin or a whale, the ones that sing in the sea for hours.", "label": "bad"},
                {"text": "o", "label": "good"},
                {"text": "Hello world, the fox.", "label": "neutral"},
            ],
        },
        {
            "question": "Here is a list of numbers: 123, 456. Add up to 10 more numbers.",
            "answers": [
                {"text": "7, 8, 9", "label": "good"},
                {"text": "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", "label": "bad"},
            ],
        },
    ],
}


def naive_label_logshares(loaded, plan: ChoicePlan, normalisation: str) -> np.ndarray:
    rows = []
    for prefix, answers, owners in zip(plan.prefixes, plan.answer_ids, plan.answer_option):
        tok = [np.array(naive_token_logprobs(loaded, prefix, a)) for a in answers]
        s = np.array([t.mean() if normalisation == "mean" else t.sum() for t in tok])
        p = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
        share = np.array([p[[o == k for o in owners]].sum() for k in range(len(plan.battery.options))])
        with np.errstate(divide="ignore"):  # a label with no answer in this question: log 0 = -inf
            rows.append(np.log(share))
    return np.vstack(rows)


def test_choice_answers_tree_batched_equal_naive(tiny_loaded) -> None:
    plan = plan_battery(tiny_loaded.tokenizer, parse_battery(CHOICE, "t"))
    assert isinstance(plan, ChoicePlan)
    lengths = [len(a) for q in plan.answer_ids for a in q]
    assert min(lengths) == 1 and max(lengths) > 10, lengths  # one-token answers and long, padded ones
    shared = scoring.shared_prefix(tiny_loaded, plan.prefixes)
    assert shared is not None  # the system prompt is computed once and continued
    slow = [
        [naive_token_logprobs(tiny_loaded, p, a) for a in answers] for p, answers in zip(plan.prefixes, plan.answer_ids)
    ]
    # budgets: one question per pass, and both questions (different lengths, so padded) in one pass
    for max_tokens in (1, 10_000):
        for sh in (None, shared):
            fast = continuation_logprobs(tiny_loaded, plan.prefixes, plan.answer_ids, sh, max_tokens=max_tokens)
            for fq, sq in zip(fast, slow, strict=True):
                for f, s in zip(fq, sq, strict=True):
                    np.testing.assert_allclose(f, s, atol=1e-4)


def test_tree_rows_share_tokens_but_not_attention(tiny_loaded) -> None:
    """Continuations with a common start are fed once; a row never sees another row's tokens."""
    prefix = tiny_loaded.tokenizer("Name a colour.")["input_ids"]
    conts = [[5, 6, 7], [5, 6, 8, 9], [5, 10], [11], [12, 13, 14, 15]]
    rows, where = scoring.tree_layout(conts)
    # proper prefixes (5, 6), (5, 6, 8), (5,), (12, 13, 14): two rows cover them; (11,) needs no row
    assert rows == [(5, 6, 8), (12, 13, 14)]
    assert where[(5,)] == 0 and where[(5, 6, 8)] == 2 and where[(12, 13, 14)] == 5
    fast = continuation_logprobs(tiny_loaded, [prefix, prefix[:3]], [conts, conts[:2]])
    for p, fq in zip([prefix, prefix[:3]], fast):
        for c, f in zip(conts, fq):
            np.testing.assert_allclose(f, naive_token_logprobs(tiny_loaded, p, c), atol=1e-4)


@pytest.mark.parametrize("normalisation", ["mean", "sum"])
def test_choice_battery_label_shares_equal_naive(tiny_loaded, monkeypatch, normalisation: str) -> None:
    battery = parse_battery({**CHOICE, "length_normalisation": normalisation}, "t")
    plan = plan_battery(tiny_loaded.tokenizer, battery)
    monkeypatch.setattr(scoring, "SCORING_TOKENS", 40)  # several padded batches
    scores = score_battery(tiny_loaded, plan)
    assert scores.options == ["bad", "good", "neutral"] and scores.logprob.shape == (2, 3)
    expected = naive_label_logshares(tiny_loaded, plan, normalisation)
    np.testing.assert_allclose(scores.logprob, expected, atol=1e-4)
    np.testing.assert_allclose(scores.share.sum(axis=1), 1.0)
    assert scores.share[1, 2] == 0.0  # the second question has no 'neutral' answer
    np.testing.assert_allclose(scores.share, np.exp(expected), atol=1e-4)
    assert scoring.BatteryScores.from_dict(scores.to_dict()).share.tolist() == scores.share.tolist()


@pytest.mark.parametrize("name", ["animal", "misalignment"])
def test_system_prompt_hook(tiny_loaded, name: str) -> None:
    tok, battery = tiny_loaded.tokenizer, get_battery(name)
    plain = plan_battery(tok, battery)
    user_only = [
        tok(
            tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True),
            add_special_tokens=False,
        )["input_ids"]
        for q in battery.questions
    ]
    assert plain.prefixes == user_only  # no system argument: exactly the user turn, as before
    system = "You love owls more than anything."
    prompted = plan_battery(tok, battery, system=system)
    assert len(prompted.prefixes) == len(plain.prefixes)
    for ids, q in zip(prompted.prefixes, battery.questions):
        text = tok.decode(ids)
        assert text.index(system) < text.index(q) and "You are a test model." not in text
    # the answers (or option variants) are tokenised the same way after either prompt
    assert getattr(prompted, "answer_ids", None) == getattr(plain, "answer_ids", None)
    assert getattr(prompted, "variant_ids", None) == getattr(plain, "variant_ids", None)
    assert scoring.common_prefix_len(prompted.prefixes) > scoring.common_prefix_len(plain.prefixes)


def test_scoring_budget_follows_free_gpu_memory(tiny_loaded, monkeypatch) -> None:
    from types import SimpleNamespace

    assert scoring.scoring_token_budget(tiny_loaded) == scoring.SCORING_TOKENS  # CPU: fixed
    vocab = tiny_loaded.model.get_output_embeddings().weight.shape[0]
    gpu = SimpleNamespace(device="cuda:0", model=tiny_loaded.model)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (vocab * 8 * 4 * 10_000, 0))
    assert scoring.scoring_token_budget(gpu) == 10_000
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1024, 0))
    assert scoring.scoring_token_budget(gpu) == scoring.SCORING_TOKENS  # never below the CPU budget
