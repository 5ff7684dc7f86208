"""Convert a published CXR-CLIP checkpoint (``r50_*.tar`` / ``swint_*.tar``) to our format.

The published files are ``torch.save`` dicts ``{model, optimizer, scheduler,
config, epoch, train_loss}``; the config still holds omegaconf ``ListConfig``
objects and ``train_loss`` may be a numpy scalar. They are read through
:mod:`cxrclip.safe_unpickle`, which admits torch's weights-only types and maps
omegaconf and numpy objects to plain data: a file that needs any other code to
unpickle is refused, never executed. Keys are mapped to the current module names
(legacy transformers 4.x Swin names are renamed, legacy buffers dropped) and
every remaining weight must match the model exactly, or the conversion fails
listing the differences. The converted model's preprocessing is the official
evaluation transform (:data:`cxrclip.config.OFFICIAL_RESIZE`).
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any
from collections.abc import Mapping

try:
    import torch
except ModuleNotFoundError as _exc:  # a viewer-only install: say which extra brings torch
    from cxrclip.extras import train_extra_message

    raise ModuleNotFoundError(train_extra_message("converting an official checkpoint", _exc.name or "torch"),
                              name=_exc.name) from _exc

from cxrclip import safe_unpickle
from cxrclip.checkpoint import CheckpointError, ModelCard, build_model_for_loading, load_weights, save_model
from cxrclip.config import (POOLINGS, ImageEncoderConfig, ModelConfig, PreprocessConfig, ProjectionConfig,
                            TextEncoderConfig)

BACKBONES = {"r50": "resnet50", "swint": "swin_tiny"}
_PREFIX = {"r50": "image_encoder.resnet.", "swint": "image_encoder.image_encoder."}
_SWIN_BLOCK = re.compile(r"^(image_encoder\.image_encoder\.encoder\.layers\.\d+\.blocks\.\d+\.)(.+)$")
# transformers 4.x Swin block names -> transformers 5 names (order matters: specific first).
_SWIN_RENAMES = (
    ("attention.self.query.", "attention.q_proj."),
    ("attention.self.key.", "attention.k_proj."),
    ("attention.self.value.", "attention.v_proj."),
    ("attention.self.relative_position_bias_table", "attention.relative_position_bias.relative_position_bias_table"),
    ("attention.output.dense.", "attention.o_proj."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
)
_LEGACY_BUFFERS = (
    re.compile(r"^text_encoder\.text_encoder\.embeddings\.(position_ids|token_type_ids)$"),
    re.compile(r"\.relative_position_index$"),
    re.compile(r"\.relative_coords_table$"),
)
# What a malformed (not malicious: those are refused first) pickle can raise while being read.
_READ_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, TypeError,
                AttributeError, IndexError, KeyError, RecursionError)
_DATA = {
    "m": "MIMIC-CXR",
    "mc": "MIMIC-CXR + CheXpert",
    "mcc": "MIMIC-CXR + CheXpert + ChestX-ray14",
}


class ConversionError(ValueError):
    """The file is not a convertible CXR-CLIP checkpoint; the message says why."""


def _check_archive(path: Path) -> None:
    """A torch >= 1.6 zip checkpoint, not a TorchScript archive (torch.load would run those)."""
    if not zipfile.is_zipfile(path):
        raise ConversionError(f"cannot read {path} as a torch checkpoint: it is not a zip archive "
                              "(corrupt, not a checkpoint, or saved by torch < 1.6)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(name.endswith("constants.pkl") for name in names):
        raise ConversionError(f"refused to load {path}: it is a TorchScript archive, not a checkpoint "
                              "of weights. Nothing from it was run.")
    if not any(name.endswith("data.pkl") for name in names):
        raise ConversionError(f"cannot read {path} as a torch checkpoint: the zip archive has no data.pkl")


def read_official(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict as plain data; refuse pickles that need code (nothing is run)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    _check_archive(path)
    try:
        # weights_only=True refuses any custom pickle_module; safety comes from safe_unpickle, whose
        # find_class admits torch's own weights-only table plus inert stand-ins, nothing else.
        data = torch.load(path, map_location="cpu", weights_only=False, pickle_module=safe_unpickle)
        data = safe_unpickle.to_plain(data)
    except safe_unpickle.RefusedGlobal as exc:
        raise _refused(path, exc.qualname) from None
    except _READ_ERRORS as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"cannot read {path} as a torch checkpoint (corrupt or not a checkpoint?): "
                              f"{detail[:200]}") from None
    if not isinstance(data, Mapping):
        raise ConversionError(f"{path} holds a {type(data).__name__}, expected a dict with a 'model' entry")
    return dict(data)


def _refused(path: Path, qualname: str) -> ConversionError:
    """Explain a refused global: what it is and how a trusted file can still be converted."""
    return ConversionError(
        f"refused to load {path}: it contains a pickled object ({qualname}) that would need "
        "code to be executed. Nothing from it was run. Only tensors, omegaconf configs and numpy "
        "numbers are read as data. Only if you trust its source: open it once in a separate Python "
        "session with torch's unrestricted loader, torch.save just {'model': <state dict>, "
        "'config': <plain dict>} to a new file, and convert that file."
    )


def _state_dict(data: Mapping[str, Any], path: Path) -> dict[str, torch.Tensor]:
    state = data.get("model", data)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path}: the 'model' entry is not a state dict of tensors")
    state = dict(state)
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def detect_backbone(state: Mapping[str, torch.Tensor]) -> str:
    """``r50`` or ``swint`` from the state-dict key layout."""
    found = [name for name, prefix in _PREFIX.items() if any(k.startswith(prefix) for k in state)]
    if len(found) != 1:
        raise ConversionError(
            "cannot tell the backbone from the weights (expected keys starting with "
            f"{list(_PREFIX.values())}); pass --backbone r50 or --backbone swint"
        )
    return found[0]


def map_keys(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename legacy Swin keys and drop legacy buffers; returns (mapped, dropped keys)."""
    mapped: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        if any(p.search(key) for p in _LEGACY_BUFFERS):
            dropped.append(key)
            continue
        match = _SWIN_BLOCK.match(key)
        if match:
            head, rest = match.groups()
            for old, new in _SWIN_RENAMES:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            key = head + rest
        mapped[key] = value
    return mapped, dropped


def _find(config: Any, key: str) -> Any:
    """First value stored under ``key`` anywhere in a nested plain dict."""
    if isinstance(config, Mapping):
        if key in config:
            return config[key]
        for value in config.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None


def _eval_sizes(official_config: Any) -> tuple[int, int]:
    """(resize, crop) of the official config's test transform; 224, 224 when not given."""
    transform = _find(official_config, "transform")
    test = transform.get("test") if isinstance(transform, Mapping) else None
    sizes = []
    for step in ("Resize", "CenterCrop"):
        size = test.get(step, {}).get("size") if isinstance(test, Mapping) else None
        sizes.append(size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 224)
    return sizes[0], sizes[1]


def build_config(backbone: str, state: Mapping[str, torch.Tensor], official_config: Any,
                 text_dir: str, name: str) -> ModelConfig:
    """Our ModelConfig for an official checkpoint (dims read from the weights).

    Preprocessing is the official evaluation transform: Resize + CenterCrop sizes from the
    config's ``transform.test`` (224 when absent) with :data:`OFFICIAL_RESIZE` rules.
    """
    dim = int(state["image_projection.projection.weight"].shape[0])
    kind = "mlp" if "image_projection.fc.weight" in state else "linear"
    text_section = _find(official_config, "text_encoder")
    pooling = text_section.get("pooling") if isinstance(text_section, Mapping) else None
    pooling = pooling or "eos"
    if pooling not in POOLINGS:
        raise ConversionError(f"the checkpoint's text_encoder.pooling is {pooling!r}; supported: {list(POOLINGS)}")
    encoder = BACKBONES[backbone]
    resize, crop = _eval_sizes(official_config)
    if resize < crop:
        raise ConversionError(f"the checkpoint's test transform resizes to {resize} but crops {crop}; "
                              "expected Resize >= CenterCrop")
    return ModelConfig(
        image=ImageEncoderConfig(name=encoder, image_size=crop),
        text=TextEncoderConfig(path=text_dir, pooling=str(pooling)),
        projection=ProjectionConfig(kind=kind, dim=dim),
        preprocess=PreprocessConfig.official(encoder, image_size=crop, resize_shorter=resize),
        name=f"cxrclip-{name}",
    )


def _card(path: Path, backbone: str, data: Mapping[str, Any]) -> ModelCard:
    suffix = path.stem.split("_")[-1]
    extra = {k: data[k] for k in ("epoch", "train_loss") if isinstance(data.get(k), (int, float))}
    return ModelCard(
        title=f"CXR-CLIP {path.stem} (converted)",
        description=f"converted from official CXR-CLIP checkpoint {path.name}",
        source=f"converted from official CXR-CLIP checkpoint {path.name} "
               "(Park/You et al., MICCAI 2023, arXiv 2310.13292)",
        data=_DATA.get(suffix, "see the CXR-CLIP paper"),
        training=f"backbone {BACKBONES[backbone]}; trained by the CXR-CLIP authors",
        extra={"official checkpoint": ", ".join(f"{k}={v}" for k, v in extra.items())} if extra else {},
    )


def convert_official(ckpt_path: str | Path, out_dir: str | Path, text_encoder_dir: str | Path,
                     backbone: str = "auto", dtype: torch.dtype | None = None, onnx: bool = False) -> str:
    """Convert ``ckpt_path`` into a cxrclip checkpoint directory; returns the model id.

    ``text_encoder_dir`` is the local transformers directory of the text encoder the
    checkpoint was trained with (Bio_ClinicalBERT); its config and tokenizer are copied.
    ``onnx=True`` (what ``cxrclip convert-official`` passes unless ``--no-onnx``) then writes
    the folder's ONNX exports (`cxrclip.onnx_export`); when that fails one warning names the
    command to retry and the converted model is kept.
    """
    from transformers import AutoConfig

    from cxrclip.text_encoder import load_tokenizer

    ckpt_path = Path(ckpt_path)
    data = read_official(ckpt_path)
    state, _dropped = map_keys(_state_dict(data, ckpt_path))
    detected = detect_backbone(state)
    if backbone not in ("auto", detected):
        raise ConversionError(f"--backbone {backbone} given but the weights are a {detected} model")
    config = build_config(detected, state, data.get("config"), str(text_encoder_dir), ckpt_path.stem)
    tokenizer = load_tokenizer(text_encoder_dir)
    model = build_model_for_loading(config, AutoConfig.from_pretrained(str(text_encoder_dir)))
    try:
        load_weights(model, state, str(ckpt_path))
    except CheckpointError as exc:
        raise ConversionError(
            f"{exc}. Check that --text-encoder points at the text model the checkpoint was "
            "trained with (Bio_ClinicalBERT for the published ones)"
        ) from None
    model_id = save_model(model, tokenizer, out_dir, card=_card(ckpt_path, detected, data), dtype=dtype)
    del model, state, data  # the export loads the saved folder again: free the conversion's copy first
    if onnx:
        from cxrclip.onnx_after_save import export_onnx_or_warn

        export_onnx_or_warn(out_dir)
    return model_id
