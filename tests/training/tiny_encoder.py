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
