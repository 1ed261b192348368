from __future__ import annotations

import pytest
import torch

from auditor.chat import encode_training_example
from auditor.data import Example
from auditor.models import load_base, resolve_base
from auditor.probe import ProbeConfig, Prober, batch_order, plan_steps


@pytest.fixture
def prober(tiny_model_dir):
    loaded = load_base(resolve_base(str(tiny_model_dir)), device="cpu")
    return Prober(loaded, ProbeConfig(rank=4, alpha=8, batch_size=4, learning_rate=5e-3))


def rows(n: int, salt: str = "") -> list[Example]:
    return [
        Example(
            prompt=({"role": "user", "content": f"Here is a list of numbers: {i}{salt}"},),
            completion=f"{i}, {i + 1}, {i + 2}",
        )
        for i in range(n)
    ]


def test_loss_only_on_completion(tiny_loaded) -> None:
    tok = tiny_loaded.tokenizer
    prompt = ({"role": "user", "content": "hello"},)
    ids, labels = encode_training_example(tok, prompt, "1, 2")
    n_prompt = sum(1 for x in labels if x == -100)
    assert tok.decode(ids[:n_prompt]).endswith("<|im_start|>assistant\n")
    assert tok.decode([x for x in labels if x != -100]) == "1, 2<|im_end|>\n"


def test_batch_order_is_seeded_and_covers_rows() -> None:
    a = batch_order(10, 6, 4, seed=1)
    assert a == batch_order(10, 6, 4, seed=1) and a != batch_order(10, 6, 4, seed=2)
    assert sorted(i for b in a[:3] for i in b) == list(range(10))
    assert plan_steps(10, ProbeConfig(batch_size=4, epochs=2)) == 5
    assert plan_steps(10, ProbeConfig(max_steps=3)) == 3


def test_same_seed_same_init_and_deterministic_training(prober) -> None:
    prober.reset_adapter(7)
    init_a = prober.adapter_state()
    prober.reset_adapter(7)
    init_b = prober.adapter_state()
    assert all(torch.equal(init_a[k], init_b[k]) for k in init_a)
    assert any("lora_B" in k for k in init_a) and all(init_a[k].abs().sum() == 0 for k in init_a if "lora_B" in k)
    s1 = prober.train(rows(12), seed=7, arm="dataset")
    after1 = prober.adapter_state()
    s2 = prober.train(rows(12), seed=7, arm="dataset")
    after2 = prober.adapter_state()
    assert all(torch.equal(after1[k], after2[k]) for k in after1)
    assert s1.losses == s2.losses and s1.steps == 3
    assert any(not torch.equal(after1[k], init_a[k]) for k in after1)
    other = prober.train(rows(12, salt="x"), seed=7, arm="control")
    assert other.losses != s1.losses


def test_adapter_disable_restores_base(prober) -> None:
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        base = prober.model(input_ids=ids).logits
    prober.train(rows(8), seed=1, arm="dataset")
    with torch.no_grad():
        tuned = prober.model(input_ids=ids).logits
        with prober.disabled():
            again = prober.model(input_ids=ids).logits
    assert not torch.allclose(base, tuned)
    assert torch.allclose(base, again)
