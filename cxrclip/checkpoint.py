"""The cxrclip checkpoint directory: save, load and validate.

Layout of ``MODEL_DIR``::

    config.json        format_version, model config (incl. preprocessing), model_id, dtype
    model.safetensors  all weights of CXRClip (float32 or float16)
    text_encoder/      transformers config.json + tokenizer files of the text encoder
    MODEL_CARD.md      human-readable card; model_card.json holds the same fields
    MANIFEST.sha256    SHA-256 of every other file (``sha256sum -c`` format), checked on load

Loading needs nothing but this directory. Writes are atomic: everything is
written to a temporary sibling directory that is renamed into place, so a
crash never leaves a half-written checkpoint (the trainer relies on this).

A folder either loads correctly or :func:`load_model` raises
:class:`ModelFolderError` (a ``ValueError``; :class:`ModelFileMissing`, its
subclass, is also a ``FileNotFoundError``) whose message names the file and the
fix in 1-3 lines: missing or changed files (manifest), a config that is not a
JSON object or lacks its ``model`` section, damaged or truncated weights,
weights that do not fit the config, NaN/Inf weights, and tokenizer files that
are missing or do not fit the text encoder's vocabulary.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from cxrclip.config import ModelConfig
from cxrclip.manifest import MANIFEST_FILE, check_manifest, sha256_file, write_manifest

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TEXT_DIR = "text_encoder"
CARD_MD = "MODEL_CARD.md"
CARD_JSON = "model_card.json"
_LIST_LIMIT = 8


class CheckpointError(ValueError):
    """A checkpoint is malformed or does not match the model it is loaded into."""


class ModelFolderError(CheckpointError):
    """A model folder cannot be loaded. ``str()`` is for users: 1-3 lines naming the file and the fix."""


class ModelFileMissing(ModelFolderError, FileNotFoundError):
    """The model folder, or a file it needs, does not exist."""


@dataclass
class ModelCard:
    """What a model is, how it was made and how well it works; shown by the viewer."""

    title: str = "CXR-CLIP model"
    description: str = ""
    source: str = ""
    data: str = ""
    training: str = ""
    hardware: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    intended_use: str = "Research only. Not a medical device; not for diagnosis."
    limitations: str = ""
    license: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_any(cls, card: ModelCard | Mapping[str, Any] | str | None) -> ModelCard:
        """Accept a card, a dict of its fields, a markdown/plain description, or None."""
        if card is None:
            return cls()
        if isinstance(card, ModelCard):
            return card
        if isinstance(card, str):
            return cls(description=card)
        if isinstance(card, Mapping):
            allowed = [f.name for f in dataclasses.fields(cls)]
            unknown = [k for k in card if k not in allowed]
            if unknown:
                raise ValueError(f"unknown model card field {unknown[0]!r}; allowed: {allowed}")
            return cls(**dict(card))
        raise TypeError(f"card must be a ModelCard, dict, str or None, got {type(card).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_markdown(self) -> str:
        """Render as a markdown model card."""
        lines = [f"# {self.title}", ""]
        if self.description:
            lines += [self.description, ""]
        sections = [("Source", self.source), ("Training data", self.data),
                    ("Training run", self.training), ("Hardware", self.hardware),
                    ("Intended use", self.intended_use), ("Limitations", self.limitations),
                    ("License", self.license)]
        for heading, text in sections:
            if text:
                lines += [f"## {heading}", "", text, ""]
        if self.metrics:
            lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in self.metrics.items()]
            lines.append("")
        for key, value in self.extra.items():
            lines += [f"## {key}", "", str(value), ""]
        return "\n".join(lines).rstrip() + "\n"


@dataclass
class LoadedModel:
    """Result of :func:`load_model`."""

    model: Any
    tokenizer: Any
    config: ModelConfig
    card: ModelCard
    model_id: str
    path: Path


def file_model_id(name: str, weights_path: str | Path) -> str:
    """Stable id ``<name>-<16 hex of sha256(weights file)>`` used as a cache key."""
    return f"{name}-{sha256_file(Path(weights_path))[:16]}"


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LIST_LIMIT])
    more = f" ... ({len(keys)} in all)" if len(keys) > _LIST_LIMIT else f" ({len(keys)})"
    return shown + more


def check_state_dict(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor],
                     source: str) -> None:
    """Raise :class:`CheckpointError` on missing/unexpected keys or shape mismatches."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if problems:
        raise CheckpointError(f"{source} does not match the model; " + "; ".join(problems))
    for key, tensor in got.items():
        want = tuple(expected[key].shape)
        if tuple(tensor.shape) != want:
            raise CheckpointError(
                f"{source}: shape mismatch for {key!r}: checkpoint has {list(tensor.shape)}, "
                f"model expects {list(want)}"
            )


def _make_readable(directory: Path) -> None:
    """Give the saved tree ordinary permissions (mkdtemp makes 0700; models are shared files)."""
    directory.chmod(0o755)
    for path in directory.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _weights_for_saving(model: torch.nn.Module, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        state[key] = value.cpu().contiguous()
    return state


def _save_text_encoder(model: Any, tokenizer: Any, directory: Path) -> None:
    directory.mkdir()
    model.text_encoder.text_encoder.config.save_pretrained(str(directory))
    if tokenizer is None:
        tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        from cxrclip.text_encoder import load_tokenizer

        tokenizer = load_tokenizer(model.config.text.path)
    tokenizer.save_pretrained(str(directory))


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move ``tmp`` to ``out_dir``; an existing ``out_dir`` is swapped out, then removed."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_model(model: Any, tokenizer: Any, out_dir: str | Path,
               card: ModelCard | Mapping[str, Any] | str | None = None,
               dtype: torch.dtype | None = None, overwrite: bool = True) -> str:
    """Write ``model`` (a CXRClip) and its tokenizer to ``out_dir`` atomically.

    ``dtype=torch.float16`` halves the file (loading casts back to float32).
    ``tokenizer=None`` uses ``model.tokenizer`` or the one in ``config.text.path``.
    Returns the model id.
    """
    import torch
    from safetensors.torch import save_file

    if dtype not in (None, torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be None, torch.float32, float16 or bfloat16, got {dtype}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True or choose another directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    card_obj = ModelCard.from_any(card)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        save_file(_weights_for_saving(model, dtype), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        model_id = file_model_id(model.config.name, tmp / WEIGHTS_FILE)
        _save_text_encoder(model, tokenizer, tmp / TEXT_DIR)
        _write_json(tmp / CONFIG_FILE, {
            "format_version": FORMAT_VERSION,
            "model_id": model_id,
            "model": model.config.to_dict(),
            "text_encoder": {"dir": TEXT_DIR, "source": model.config.text.path},
            "dtype": str(dtype or torch.float32).removeprefix("torch."),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        })
        (tmp / CARD_MD).write_text(card_obj.to_markdown(), encoding="utf-8")
        _write_json(tmp / CARD_JSON, card_obj.to_dict())
        write_manifest(tmp)
        _make_readable(tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return model_id


_FIX_RESTORE = "Copy the model folder again from where it came from (or re-save or re-convert the model)."


def missing_folder_error(model_dir: Path) -> ModelFileMissing:
    """The error for a model folder that does not exist (shared by the loaders and the CLI)."""
    return ModelFileMissing(f"model directory {model_dir} does not exist.\n"
                            "Choose a folder made by `cxrclip train` or `cxrclip convert-official`.")


def _config_path(model_dir: Path) -> Path:
    if not model_dir.exists():
        raise missing_folder_error(model_dir)
    if not model_dir.is_dir():
        raise ModelFileMissing(f"{model_dir} is a file, not a model folder.\n"
                               "Choose the folder that holds config.json and model.safetensors.")
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise ModelFileMissing(
            f"{path} is missing: {model_dir} is not a cxrclip model folder.\n"
            "Choose a folder made by `cxrclip train`; official .tar checkpoints must first be converted "
            "with `cxrclip convert-official`."
        )
    return path


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """Parsed ``config.json`` of a model folder: a JSON object of a supported format with a ``model`` section."""
    path = _config_path(Path(model_dir))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{path} is not valid JSON ({exc}).\n{_FIX_RESTORE}") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path} holds a JSON {type(data).__name__}, not an object with the model's "
                               f"settings.\n{_FIX_RESTORE}")
    version = data.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ModelFolderError(
            f"{path}: unsupported format_version {version!r}; this cxrclip reads "
            f"{list(SUPPORTED_FORMAT_VERSIONS)}.\nUpgrade cxrclip or re-save the model."
        )
    if not isinstance(data.get("model"), dict):
        raise ModelFolderError(f"{path} has no 'model' section (the model's settings).\n{_FIX_RESTORE}")
    return data


def read_card(model_dir: str | Path) -> ModelCard:
    """The model card of a checkpoint (empty card when none was saved)."""
    path = Path(model_dir) / CARD_JSON
    if not path.is_file():
        return ModelCard(title="(no model card)")
    try:
        return ModelCard.from_any(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise ModelFolderError(f"{path} is not a valid model card ({exc}).\n{_FIX_RESTORE} "
                               f"Or delete {CARD_JSON}: the model loads without a card.") from None


def _no_init() -> Any:
    """Context that skips random weight init (the weights are loaded right after)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers < 5 keeps it elsewhere, with a flag
        from transformers.modeling_utils import no_init_weights

        return no_init_weights(True)
    return no_init_weights()


def build_model_for_loading(config: ModelConfig, text_model_config: Any) -> Any:
    """A CXRClip whose parameters are allocated but not initialised (fast)."""
    from cxrclip.model import CXRClip

    with _no_init():
        return CXRClip(config, text_model_config=text_model_config)


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Check ``state`` against ``model`` and make its tensors the model's (float32, no copy)."""
    expected = model.state_dict()
    check_state_dict(expected, state, source)
    ready = {k: v.to(expected[k].dtype) if v.dtype != expected[k].dtype else v for k, v in state.items()}
    model.load_state_dict(ready, strict=True, assign=True)


def _resolve_device(device: str | torch.device) -> torch.device:
    import torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _model_config(data: Mapping[str, Any], path: Path) -> ModelConfig:
    try:
        return ModelConfig.from_dict(data["model"])
    except (ValueError, TypeError) as exc:
        raise ModelFolderError(f"{path}: the 'model' section is invalid: {exc}.\n{_FIX_RESTORE}") from None


def _check_manifest(model_dir: Path) -> None:
    problem = check_manifest(model_dir)
    if problem is None:
        return
    manifest = model_dir / MANIFEST_FILE
    if problem.reason == "missing":
        raise ModelFileMissing(f"{model_dir / problem.path} is missing (listed in {manifest}).\n{_FIX_RESTORE}")
    if problem.reason == "changed":
        raise ModelFolderError(
            f"{model_dir / problem.path} does not match its SHA-256 sum in {manifest}: it was changed or "
            f"damaged after the model was saved.\n{_FIX_RESTORE} If you changed it on purpose, delete "
            f"{MANIFEST_FILE}."
        )
    raise ModelFolderError(f"{manifest} is {problem.reason}.\n{_FIX_RESTORE} Or delete {MANIFEST_FILE}.")


# Embedding matrices may be padded beyond the vocabulary (to a multiple of 64 at most).
VOCAB_PADDING = 64
# Files that hold a tokenizer's vocabulary (fast tokenizer, WordPiece, BPE, SentencePiece).
_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                "tokenizer.model")


def _required_files(weights: Path, text_dir: Path) -> None:
    for required in (weights, text_dir / "config.json"):
        if not required.is_file():
            raise ModelFileMissing(f"checkpoint file missing: {required}.\n{_FIX_RESTORE}")
    if not any((text_dir / name).is_file() for name in _VOCAB_FILES):
        raise ModelFileMissing(f"{text_dir / 'tokenizer.json'} is missing: the folder has no tokenizer "
                               f"vocabulary ({', '.join(_VOCAB_FILES)}).\n{_FIX_RESTORE}")


def _text_model_config(text_dir: Path) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(text_dir))
    except (OSError, ValueError, KeyError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFolderError(f"{text_dir / 'config.json'} cannot be read as a transformers config "
                               f"({detail[:200]}).\n{_FIX_RESTORE}") from None


def _read_weights(weights: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    import torch
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFolderError(f"{weights} is damaged or incomplete (a truncated download or copy?): "
                               f"{type(exc).__name__}: {str(exc)[:200]}.\n{_FIX_RESTORE}") from None
    # float16/bfloat16 files: the model is float32, and the finiteness check is slow on CPU halves.
    return {k: v.float() if v.is_floating_point() and v.dtype != torch.float32 else v for k, v in state.items()}


def _all_finite(tensor: torch.Tensor) -> bool:
    """True when no element is NaN or Inf. A finite sum proves it in one pass without a copy;
    only a non-finite sum (NaN/Inf inside, or an overflow of huge values) needs the elementwise check."""
    import torch

    if math.isfinite(float(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def _check_finite(state: Mapping[str, torch.Tensor], weights: Path) -> None:
    bad = [k for k, v in state.items() if v.is_floating_point() and not _all_finite(v)]
    if bad:
        raise ModelFolderError(
            f"{weights} has NaN or infinite values in {_listing(bad)}: the model would give NaN scores.\n"
            "Training diverged or the file is damaged: use an earlier checkpoint or copy the model again."
        )


def _tokenizer(text_dir: Path, text_config: Any) -> Any:
    """The saved tokenizer, checked against the text encoder's embedding rows (``vocab_size``)."""
    from cxrclip.text_encoder import load_tokenizer

    try:
        tokenizer = load_tokenizer(text_dir)
    # tokenizers' Rust parser raises a bare Exception on a damaged tokenizer.json.
    except Exception as exc:  # noqa: BLE001
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFolderError(f"the tokenizer in {text_dir} cannot be loaded ({detail[:200]}).\n"
                               f"{_FIX_RESTORE}") from None
    rows = int(getattr(text_config, "vocab_size", 0) or 0)
    size = len(tokenizer)
    if not rows - VOCAB_PADDING <= size <= rows:
        raise ModelFolderError(
            f"the tokenizer in {text_dir} has {size} tokens but the text encoder has {rows} token embeddings: "
            "its tokenizer files (tokenizer.json / vocab.txt) are missing or belong to another model.\n"
            f"{_FIX_RESTORE}"
        )
    return tokenizer


@dataclass
class _Parts:
    """What a model folder holds, read and checked, before the model is built."""

    data: dict[str, Any]
    config: ModelConfig
    text_config: Any
    state: dict[str, torch.Tensor]
    tokenizer: Any
    weights: Path
    card: ModelCard


def _read_parts(model_dir: Path) -> _Parts:
    data = read_config(model_dir)
    _check_manifest(model_dir)
    weights = model_dir / WEIGHTS_FILE
    text_section = data.get("text_encoder")
    text_dir = model_dir / (text_section.get("dir", TEXT_DIR) if isinstance(text_section, dict) else TEXT_DIR)
    _required_files(weights, text_dir)
    config = _model_config(data, model_dir / CONFIG_FILE)
    config.text.path = str(text_dir)
    text_config = _text_model_config(text_dir)
    state = _read_weights(weights)
    _check_finite(state, weights)
    tokenizer = _tokenizer(text_dir, text_config)
    return _Parts(data, config, text_config, state, tokenizer, weights, read_card(model_dir))


def _check_weights_fit(parts: _Parts, model: torch.nn.Module, model_dir: Path) -> None:
    try:
        check_state_dict(model.state_dict(), parts.state, str(parts.weights))
    except CheckpointError as exc:
        raise ModelFolderError(f"{exc}.\nThe weights do not belong to the model described in "
                               f"{model_dir / CONFIG_FILE}. {_FIX_RESTORE}") from None


def _build(parts: _Parts, model_dir: Path) -> torch.nn.Module:
    try:
        return build_model_for_loading(parts.config, parts.text_config)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFolderError(f"{model_dir / CONFIG_FILE}: cannot build the model it describes ({exc}).\n"
                               "Upgrade cxrclip if a newer version made the model; else copy the folder "
                               "again.") from None


def check_model_folder(model_dir: str | Path) -> dict[str, Any]:
    """Every check of :func:`load_model`, without allocating the model; returns ``config.json``.

    Reads the weights (memory-mapped) and the tokenizer and compares the weights with a
    model built on the meta device. Raises :class:`ModelFolderError`.
    """
    import torch

    model_dir = Path(model_dir)
    parts = _read_parts(model_dir)
    with torch.device("meta"):
        skeleton = _build(parts, model_dir)
    _check_weights_fit(parts, skeleton, model_dir)
    return parts.data


def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint directory written by :func:`save_model` (model in eval mode).

    Raises :class:`ModelFolderError` (message names the file and the fix) when the folder
    is not a usable model; see the module docstring for what is checked.
    """
    model_dir = Path(model_dir)
    parts = _read_parts(model_dir)
    model = _build(parts, model_dir)
    _check_weights_fit(parts, model, model_dir)
    load_weights(model, parts.state, str(parts.weights))
    model.tokenizer = parts.tokenizer
    model.to(_resolve_device(device)).eval()
    model_id = parts.data.get("model_id") or file_model_id(parts.config.name, parts.weights)
    return LoadedModel(model, model.tokenizer, parts.config, parts.card, model_id, model_dir)
