from __future__ import annotations

import pytest
import torch

from auditor.chat import encode_training_example
from auditor.data import Example
from auditor.finetune import ProbeConfig, Prober, batch_order, plan_steps
from auditor.models import load_base, resolve_base


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


def test_bucketed_batch_order_covers_rows_and_cuts_padding() -> None:
    import numpy as np

    lengths = np.random.RandomState(0).randint(50, 150, size=200).tolist()
    plain = batch_order(200, 25, 8, seed=3)
    bucketed = batch_order(200, 25, 8, seed=3, lengths=lengths)
    assert bucketed == batch_order(200, 25, 8, seed=3, lengths=lengths)
    assert sorted(i for b in bucketed for i in b) == list(range(200))  # one epoch: every row exactly once

    def waste(order):
        real = sum(lengths[i] for b in order for i in b)
        return 1 - real / sum(len(b) * max(lengths[i] for i in b) for b in order)

    assert waste(bucketed) < waste(plain) / 3
    # the windows' batches are shuffled, so length does not grow steadily through training
    firsts = [min(lengths[i] for i in b) for b in bucketed[:8]]
    assert firsts != sorted(firsts)
    # more steps than one epoch: the next epoch starts a new permutation
    two = batch_order(200, 50, 8, seed=3, lengths=lengths)
    assert two[:25] == bucketed and sorted(i for b in two[25:] for i in b) == list(range(200))


def test_completion_loss_equals_model_loss_and_gradient(prober) -> None:
    from auditor.finetune import completion_loss, pad_batch, shared_prefix_len

    prober.reset_adapter(1)
    with torch.no_grad():
        for name, p in prober.adapter_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # a non-zero adapter, so its gradient path is exercised
    params = [p for _, p in prober.adapter_parameters()]
    pad = prober.loaded.tokenizer.pad_token_id
    prober.model.train()
    for batch_rows in (rows(5), rows(1)):  # a shared system prompt, and a single row (no sharing)
        ids, att, lab = pad_batch(prober.encode(batch_rows), pad)
        assert (shared_prefix_len(ids, lab) >= 8) == (len(batch_rows) > 1)
        reference = prober.model(input_ids=ids, attention_mask=att, labels=lab).loss
        reference.backward()
        expected = [p.grad.clone() for p in params]
        prober.model.zero_grad()
        loss = completion_loss(prober.model, ids, att, lab)
        loss.backward()
        torch.testing.assert_close(loss.detach(), reference.detach(), atol=1e-5, rtol=1e-5)
        for p, g in zip(params, expected):
            torch.testing.assert_close(p.grad, g, atol=1e-6, rtol=1e-4)
        prober.model.zero_grad()
    prober.model.eval()


def test_shared_prefix_stops_before_the_first_loss_token() -> None:
    from auditor.finetune import shared_prefix_len

    ids = torch.tensor([[1] * 20 + [2, 3], [1] * 20 + [4, 5]])
    labels = torch.full_like(ids, -100)
    assert shared_prefix_len(ids, labels) == 20
    labels[1, 12:] = ids[1, 12:]  # row 1's completion starts at 12: position 11 predicts it, per row
    assert shared_prefix_len(ids, labels) == 11
    labels[1, 6:] = ids[1, 6:]
    assert shared_prefix_len(ids, labels) == 0  # too short to be worth a separate pass


def test_student_saved_in_peft_format_loads_with_peft(prober, tiny_model_dir, tmp_path) -> None:
    """A saved student is a peft LoRA folder: PeftModel.from_pretrained on a fresh base gives the student's outputs."""
    from peft import PeftModel

    prober.train(rows(8), seed=3, arm="dataset")
    prober.save_peft(tmp_path / "student")
    assert {p.name for p in (tmp_path / "student").iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    ids = torch.tensor([prober.encode(rows(1, "x"))[0][0]])
    with torch.no_grad():
        student = prober.model(input_ids=ids).logits
        with prober.disabled():
            base_logits = prober.model(input_ids=ids).logits
    fresh = load_base(resolve_base(str(tiny_model_dir)), device="cpu").model
    loaded = PeftModel.from_pretrained(fresh, str(tmp_path / "student"))
    with torch.no_grad():
        again = loaded(input_ids=ids).logits
    assert not torch.allclose(student, base_logits, atol=1e-4)  # the student moved
    torch.testing.assert_close(again, student, rtol=1e-5, atol=1e-5)
