"""A 2-layer CNN image encoder registered as ``tiny_cnn`` so training tests run in seconds.

Imported by name (tests/training is put on sys.path) so spawned DDP workers can register it too.
"""
from __future__ import annotations

import torch
from torch import nn

NAME = "tiny_cnn"


class TinyCNN(nn.Module):
    """conv-BN-ReLU x2 (with BatchNorm, so SyncBatchNorm conversion is exercised)."""

    def __init__(self, image_size: int = 32, gradient_checkpointing: bool = False, **_: object) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.out_dim = 16

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))


def register() -> None:
    """Register ``tiny_cnn`` once per process."""
    from cxrclip.registry import _IMAGE_ENCODERS, register_image_encoder

    if NAME not in _IMAGE_ENCODERS:
        register_image_encoder(NAME)(TinyCNN)


def save_tiny_model(out, text_dir, name: str = "tiny-test") -> "Path":
    """A random tiny CXR-CLIP model folder (``tiny_cnn`` at 32 px, the given text tower, 16-d)."""
    from cxrclip.checkpoint import save_model
    from cxrclip.config import (ImageEncoderConfig, ModelConfig, PreprocessConfig, ProjectionConfig,
                                TextEncoderConfig)
    from cxrclip.model import CXRClip
    from cxrclip.text_encoder import load_tokenizer

    register()
    torch.manual_seed(0)
    config = ModelConfig(image=ImageEncoderConfig(name=NAME, image_size=32),
                         text=TextEncoderConfig(path=str(text_dir), max_length=32),
                         projection=ProjectionConfig(kind="linear", dim=16),
                         preprocess=PreprocessConfig.imagenet(32), name=name)
    save_model(CXRClip(config, pretrained_text=True), load_tokenizer(text_dir), out, card={"title": name})
    return out
