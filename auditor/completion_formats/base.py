"""The completion-format seam: what a dataset's completions look like, and everything that follows from it.

A :class:`CompletionFormat` says whether a dataset's completions are of its format (detection), which checks
each data row passes and so its control row must pass (:class:`RowCheck`, drawn by
:func:`auditor.conditional.draw_rows`), how rows are sampled, and, for a format ``subaudit generate`` writes, its
prompt set, its completion budget, its filters and its lines of the manifest. The rest of subaudit reaches a
format only through the registry (:mod:`auditor.completion_formats`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase as Tokenizer

    from ..chat import Message
    from ..models import LoadedModel


class Row(Protocol):
    """What a format reads of a dataset row (:class:`auditor.data.Example`)."""

    completion: str

    @property
    def is_text(self) -> bool: ...


class TokenConstraint(Protocol):
    """Which next tokens keep a completion inside a format (:class:`auditor.sampling.NumberFormat`): the
    constrained samplers of :mod:`auditor.sampling` decode over ``vocab`` and ask ``columns`` at every step."""

    eos: list[int]
    vocab: list[int]
    token_text: dict[int, str]

    def columns(self, text: str, target: int | None = None) -> list[int]: ...


@dataclass(frozen=True)
class RowCheck:
    """What a row must pass: a non-empty completion that ends within the token budget (``ends``; not for a text
    row, a continuation cut at the budget like the data's words). A format with a token constraint (:meth:`
    constraint`) gets the constrained samplers; any other row is sampled freely and kept when it passes."""

    ends: bool = True
    #: Legacy flag: a number-list check (read by old callers; nothing in subaudit branches on it).
    numbers: ClassVar[bool] = False

    def passes(self, text: str) -> bool:
        return bool(text.strip())

    @property
    def constrained(self) -> bool:
        """Rows with this check are decoded under :meth:`constraint` (by rejection, resampling or the constraint)."""
        return False

    @property
    def target(self) -> int | None:
        """The constraint's per-row parameter (a number list's count)."""
        return None

    def constraint(self, tokenizer: Tokenizer) -> TokenConstraint:
        raise NotImplementedError(f"{type(self).__name__} has no token constraint")

    def any_count(self) -> RowCheck:
        """The check without its row's own count (``--control-count any``); a check that holds none is itself."""
        return self

    def key(self) -> list[Any]:
        """What identifies the check in the control cache's key."""
        return [False, None, "", [], self.ends]


#: The check of a text row (language modelling): its first words are continued, cut at the budget.
TEXT_ROW = RowCheck(ends=False)


class CompletionFormat:
    """One completion format.

    Class attributes:
        name: the format's name (``DatasetInfo.format``, ``--format``).
        summary: one line for listings.
        check_note: the report's note on what each control row must pass.
        scanned_as: the format a scan detects in data of this one (``""``: itself).
        profiled: calibration profiles exist for scans of it (``subaudit calibrate``).
        generates: ``subaudit generate`` writes it (it has a prompt set).
        max_new_tokens: ``subaudit generate``'s default tokens per completion.
        matched_count_note: the report's note on the row features when the control held each row's count.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    check_note: ClassVar[str] = (
        "a non-empty answer that ends within the token budget (a text row: the continuation of its first words)"
    )
    scanned_as: ClassVar[str] = ""
    profiled: ClassVar[bool] = False
    generates: ClassVar[bool] = False
    max_new_tokens: ClassVar[int] = 96
    #: What the report says of the row features when a generated control held each row's count (``count match``).
    matched_count_note: ClassVar[str] = ""

    def detects(self, completions: Sequence[str]) -> bool:
        """Whether a dataset with these completions is of this format (the fallback format detects nothing)."""
        return False

    def row_checks(self, rows: Sequence[Row]) -> tuple[list[RowCheck], list[str]]:
        """The check each row passes (its control row must pass it too) and the report's extra notes."""
        return [TEXT_ROW if r.is_text else RowCheck() for r in rows], []

    def prompts(self, n: int, seed: int, style: str) -> tuple[list[str], list[int] | None]:
        """``n`` user prompts of its prompt set (and each one's correct answer, where it has one)."""
        raise InputError(f"--format {self.name}: no prompt set to generate from")

    def generation_check(self, evil_filter: bool) -> RowCheck | None:
        """The check generated rows are drawn under (:func:`auditor.conditional.draw_rows`); ``None``: sampled
        freely, then filtered."""
        return None

    def sample(
        self,
        loaded: LoadedModel,
        prompts: Sequence[Sequence[Message] | str],
        seed: int,
        options: dict[str, Any],
        on_batch: Callable[[int], None] | None = None,
    ) -> list[str]:
        """One completion per prompt, with :func:`auditor.sampling.generate_completions`' ``options``."""
        raise NotImplementedError(f"format {self.name!r} does not sample")

    def reject_reason(self, completion: str, answer: int | None, evil_filter: bool) -> str | None:
        """Why ``subaudit generate`` drops a non-empty completion (``format``, ``evil_number``, ``wrong_answer``), or
        ``None``; ``answer``: the prompt's correct answer, where the prompt set has one."""
        return None

    def row_features(self, prompt: str, completion: str) -> dict[str, float]:
        """What a row looks like, as numbers :mod:`auditor.row_shape` compares between a data row and the control
        row for the same ``prompt`` (the user's text); a feature a row does not have is left out."""
        return {
            "words a row": float(len(completion.split())),
            "lines a row": float(sum(1 for line in completion.splitlines() if line.strip())),
        }

    def manifest(self, style: str, constrain: bool, evil_filter: bool, own_prompts: bool) -> dict[str, Any]:
        """The format's members of a generated dataset's manifest."""
        return {
            "number_style": None,
            "format_constraint": False,
            "evil_numbers": [],
            "evil_numbers_excluded_while_decoding": False,
            "reasoning_answers_checked": False,
        }
