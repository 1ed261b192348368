"""Chat-template helpers shared by control generation, the probe and scoring."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase as Tokenizer

Message = dict[str, str]


def prompt_text(tokenizer: Tokenizer, prompt: Sequence[Message]) -> str:
    """The templated prompt up to and including the assistant header."""
    return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)


def encode_text(tokenizer: Tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_prompt(tokenizer: Tokenizer, prompt: Sequence[Message]) -> list[int]:
    """Token ids of the templated prompt (what generation and scoring condition on)."""
    return encode_text(tokenizer, prompt_text(tokenizer, prompt))


def encode_training_example(
    tokenizer: Tokenizer, prompt: Sequence[Message], completion: str
) -> tuple[list[int], list[int]]:
    """Token ids and labels for one row; labels are -100 everywhere but the completion.

    The completion span is what the chat template appends after the generation prompt (the answer and
    its end-of-turn marker), so the student learns exactly what it would be asked to produce. Without a prompt (a
    language-modelling ``text`` row) the text is trained on whole, without the chat template, ending in eos.
    """
    if not prompt:
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        ids = encode_text(tokenizer, completion) + eos
        return ids, list(ids)
    ptext = prompt_text(tokenizer, prompt)
    full = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": completion}], tokenize=False)
    if full.startswith(ptext):
        ctext = full[len(ptext) :]
    else:  # templates that rewrite earlier turns: fall back to prompt + answer + eos
        ctext = completion + (tokenizer.eos_token or "")
    p_ids = encode_text(tokenizer, ptext)
    c_ids = encode_text(tokenizer, ctext)
    return p_ids + c_ids, [-100] * len(p_ids) + c_ids


def end_of_turn_ids(tokenizer: Tokenizer) -> list[int]:
    """Token ids that end an assistant turn (eos plus the template's end marker when it has one)."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    for marker in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
        tid = tokenizer.convert_tokens_to_ids(marker)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(ids)
