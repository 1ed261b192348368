"""The chat templates subaudit ships, and reading the one ``--chat-template NAME|FILE`` gives.

Many pretrained bases ship no chat template (Llama 3 and 3.1/3.2 bases, Gemma GGUFs), yet every row is trained and
every question scored through one. ``--chat-template`` takes a Jinja template file, or the name of one shipped in
``auditor/templates/`` (:func:`shipped_templates`): ``llama3`` (Llama 3's header-and-``<|eot_id|>`` turns) and
``gemma`` (Gemma's ``<start_of_turn>`` turns). A file of that name in the working directory wins over the shipped one.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import InputError

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

#: A shipped template per model family, matched against the base's name (its hub id, folder or file) to suggest one.
FAMILY_TEMPLATES = (
    (re.compile(r"llama[-_ ]?3", re.IGNORECASE), "llama3"),
    (re.compile(r"gemma", re.IGNORECASE), "gemma"),
)


def shipped_templates() -> dict[str, Path]:
    """Name -> file of every template in the package."""
    return {p.stem: p for p in sorted(TEMPLATES_DIR.glob("*.jinja"))}


def read_chat_template(value: str) -> str:
    """The template ``--chat-template`` names: a file, else a shipped template's name; an :class:`InputError` naming
    both choices when it is neither or the file is no chat template."""
    path = Path(value)
    if not path.is_file():
        shipped = shipped_templates()
        if value not in shipped:
            names = ", ".join(shipped)
            raise InputError(f"--chat-template {value}: no such file, and no shipped template of that name ({names})")
        path = shipped[value]
    text = path.read_text(encoding="utf-8")
    if "messages" not in text:
        raise InputError(f"--chat-template {value}: not a chat template (a Jinja template over `messages`)")
    return text


def suggested_template(base_name: str) -> str | None:
    """The shipped template for the family ``base_name`` looks like (``None``: no family matched)."""
    return next((name for pattern, name in FAMILY_TEMPLATES if pattern.search(base_name)), None)


def missing_template_advice(base_name: str) -> str:
    """What to pass when ``base_name``'s tokenizer has no chat template (the end of the refusal's message)."""
    names = ", ".join(shipped_templates())
    hint = suggested_template(base_name)
    first = f"--chat-template {hint} (shipped, this family's turn format)" if hint else f"a shipped one ({names})"
    return f"give one with {first} or --chat-template FILE (the template the data's writer used)"
