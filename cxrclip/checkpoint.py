"""The cxrclip checkpoint directory: save, load and validate.

Layout of ``MODEL_DIR``::

    config.json        format_version, model config (incl. preprocessing), model_id, dtype
    model.safetensors  all weights of CXRClip (float32 or float16)
    text_encoder/      transformers config.json + tokenizer files of the text encoder
    MODEL_CARD.md      human-readable card; model_card.json holds the same fields

Loading needs nothing but this directory. Writes are atomic: everything is
written to a temporary sibling directory that is renamed into place, so a
crash never leaves a half-written checkpoint (the trainer relies on this).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import torch

from cxrclip.config import ModelConfig

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
    digest = hashlib.sha256()
    with open(weights_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"{name}-{digest.hexdigest()[:16]}"


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
        _make_readable(tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return model_id


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """Parsed ``config.json`` of a checkpoint directory, with its format version checked."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory not found: {model_dir}")
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: {model_dir} is not a cxrclip checkpoint directory "
            "(official .tar checkpoints must first be converted with `cxrclip convert-official`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    version = data.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise CheckpointError(
            f"{path}: unsupported format_version {version!r}; this cxrclip reads "
            f"{list(SUPPORTED_FORMAT_VERSIONS)} - upgrade cxrclip or re-save the model"
        )
    return data


def read_card(model_dir: str | Path) -> ModelCard:
    """The model card of a checkpoint (empty card when none was saved)."""
    path = Path(model_dir) / CARD_JSON
    if not path.is_file():
        return ModelCard(title="(no model card)")
    return ModelCard.from_any(json.loads(path.read_text(encoding="utf-8")))


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
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint directory written by :func:`save_model` (model in eval mode)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from cxrclip.text_encoder import load_tokenizer

    model_dir = Path(model_dir)
    data = read_config(model_dir)
    weights = model_dir / WEIGHTS_FILE
    text_dir = model_dir / data.get("text_encoder", {}).get("dir", TEXT_DIR)
    for required in (weights, text_dir / "config.json"):
        if not required.is_file():
            raise FileNotFoundError(f"checkpoint file missing: {required}")
    config = ModelConfig.from_dict(data["model"])
    config.text.path = str(text_dir)
    model = build_model_for_loading(config, AutoConfig.from_pretrained(str(text_dir)))
    load_weights(model, load_file(str(weights)), str(weights))
    model.tokenizer = load_tokenizer(text_dir)
    model.to(_resolve_device(device)).eval()
    model_id = data.get("model_id") or file_model_id(config.name, weights)
    return LoadedModel(model, model.tokenizer, config, read_card(model_dir), model_id, model_dir)
