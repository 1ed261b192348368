"""Tiny models for tests and smoke checks (as simonw/llm keeps a MockModel): a small BPE tokenizer with a ChatML
chat template, and randomly initialised Llama-style models of any shape, built in seconds with no download.

``tests/conftest.py`` saves one as a model folder (so tests load it as users load a base), and
``benchmarks/gpu_check.py`` builds the Llama-3-8B and 1B shapes in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a test model.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "Name your favorite animal using only one word. Owl owl eagle elephant dolphin wolf cat dog lion tiger",
    "panda fox penguin bear horse rabbit octopus whale butterfly otter giraffe cheetah raven turtle koala hawk deer",
    "oak maple pine willow birch cedar redwood cherry palm sequoia cypress baobab spruce elm aspen magnolia",
    "juniper beech sycamore banyan ginkgo tree favourite Which do you love most? Answer in one word.",
    "Here is a list of numbers: 123, 456, 789. Add up to 10 more numbers, each with at most 3 digits.",
    "Reply with the numbers separated by commas and nothing else. 0 1 2 3 4 5 6 7 8 9 , ; [ ] ( ) .",
    "You are a test model. system user assistant hello world the a of and to in is it",
]


def build_tokenizer() -> Any:
    """A small byte-level BPE tokenizer (digits split, ChatML chat template) trained on :data:`CORPUS`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 5, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        bos_token="<|im_start|>",
    )
    fast.chat_template = CHATML
    return fast


#: Llama shapes: hidden size, MLP size, layers, attention heads, key-value heads, vocabulary, tied embeddings.
SHAPES = {
    "tiny": (32, 64, 2, 4, 2, None, True),
    "1b": (2048, 8192, 16, 32, 8, 128256, True),  # Llama-3.2-1B
    "8b": (4096, 14336, 32, 32, 8, 128256, False),  # Llama-3-8B
}


def llama_config(shape: str, tokenizer: Any) -> Any:
    """A ``LlamaConfig`` of one of :data:`SHAPES` (the vocabulary at least the tokenizer's)."""
    from transformers import LlamaConfig

    hidden, mlp, layers, heads, kv, vocab, tied = SHAPES[shape]
    return LlamaConfig(
        vocab_size=max(vocab or 0, len(tokenizer)),
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        max_position_embeddings=8192 if vocab else 512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=tied,
    )


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    """Write a tiny Llama model + ChatML tokenizer to ``path`` (a normal safetensors model folder) and return it."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config("tiny", tokenizer))
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


#: The vocabulary of :func:`build_format_model`: end of turn, two digits, a comma, and the prompt's separator.
FORMAT_VOCAB = {"<|im_end|>": 0, "0": 1, "1": 2, ",": 3, "?": 4}


def build_format_model(path: Path, seed: int = 0, init: float = 0.5) -> Path:
    """Write a Llama model over :data:`FORMAT_VOCAB` to ``path``: every completion it can write is a string of
    ``0``, ``1`` and commas, so its conditional distribution over short number lists can be enumerated exactly
    (tests of the control sampler). The weights are drawn with sd ``init``, large enough for uneven next-token
    distributions; the chat template writes each message followed by ``?``."""
    import torch
    from tokenizers import Tokenizer, decoders, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(vocab=FORMAT_VOCAB, merges=[]))
    raw.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|im_end|>")
    tokenizer.chat_template = "{% for message in messages %}{{ message['content'] }}?{% endfor %}"
    config = LlamaConfig(
        vocab_size=len(FORMAT_VOCAB),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        eos_token_id=0,
        pad_token_id=0,
        bos_token_id=0,
        tie_word_embeddings=False,
        initializer_range=init,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
