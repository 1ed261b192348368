"""``free``: any completion that is not a number list (the format a scan falls back to).

A free row's control row is any non-empty answer that ends within the token budget (a text row: the continuation
of its first words), sampled freely at the data's decoding and kept when it passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..sampling import Decoding, draw_free
from .base import CompletionFormat

if TYPE_CHECKING:
    from ..chat import Message
    from ..models import LoadedModel


class FreeFormat(CompletionFormat):
    name = "free"
    summary = "free text: any non-empty answer that ends (the fallback)"

    def sample(
        self,
        loaded: LoadedModel,
        prompts: Sequence[Sequence[Message] | str],
        seed: int,
        options: dict[str, Any],
        on_batch: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Free completions (``model.generate``), ended or not."""
        decoding = Decoding(options["temperature"], options["top_p"])
        draws = draw_free(loaded, prompts, seed, decoding, options["max_new_tokens"], options["batch_size"], on_batch)
        return [text for text, _ in draws]
