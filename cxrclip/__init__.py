"""CXR-CLIP model library: encoders, losses, preprocessing, checkpoints, inference.

Public names are imported lazily (PEP 562 ``__getattr__``) so that
``import cxrclip`` stays cheap and never imports torch or transformers until a
name that needs them is used.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ModelConfig": "cxrclip.config",
    "ImageEncoderConfig": "cxrclip.config",
    "TextEncoderConfig": "cxrclip.config",
    "ProjectionConfig": "cxrclip.config",
    "PreprocessConfig": "cxrclip.config",
    "CXRClip": "cxrclip.model",
    "list_models": "cxrclip.registry",
    "create_model": "cxrclip.registry",
    "register_image_encoder": "cxrclip.registry",
    "save_model": "cxrclip.checkpoint",
    "load_model": "cxrclip.checkpoint",
    "LoadedModel": "cxrclip.checkpoint",
    "ModelCard": "cxrclip.checkpoint",
    "ModelFolderError": "cxrclip.checkpoint",
    "Engine": "cxrclip.engine",
    "SentenceBank": "cxrclip.sentence_bank",
    "CXRClipLoss": "cxrclip.losses",
    "preprocess_image": "cxrclip.preprocess",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cxrclip' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
