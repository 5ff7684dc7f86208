"""Swin-Tiny image encoder built from a transformers ``SwinConfig`` (no download).

The configuration is swin-tiny-patch4-window7-224. The module is wrapped as
``self.image_encoder`` so keys read ``image_encoder.image_encoder.*`` in the
model, as in the published CXR-CLIP checkpoints. Like the official code, the
global feature is ``last_hidden_state[:, 0]`` (the first token of the final
stage, after the last LayerNorm); patch tokens give the spatial map.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from cxrclip.registry import register_image_encoder

SWIN_TINY = {
    "embed_dim": 96,
    "depths": [2, 2, 6, 2],
    "num_heads": [3, 6, 12, 24],
    "window_size": 7,
    "patch_size": 4,
    "num_channels": 3,
    "mlp_ratio": 4.0,
    "drop_path_rate": 0.1,
}


def swin_grid(height: int, width: int, patch_size: int, num_merges: int) -> tuple[int, int]:
    """Token grid of the last Swin stage for an input of ``height`` x ``width``."""
    h, w = math.ceil(height / patch_size), math.ceil(width / patch_size)
    for _ in range(num_merges):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w


class SwinEncoder(nn.Module):
    """Image encoder around ``transformers.SwinModel`` stored as ``self.image_encoder``."""

    def __init__(self, image_size: int = 224, gradient_checkpointing: bool = False, **overrides: object):
        super().__init__()
        from transformers import SwinConfig, SwinModel

        unknown = [k for k in overrides if k not in SWIN_TINY]
        if unknown:
            raise ValueError(
                f"unknown Swin option {unknown[0]!r}; allowed: {sorted(SWIN_TINY)} plus "
                "image_size, gradient_checkpointing"
            )
        config = SwinConfig(image_size=image_size, **{**SWIN_TINY, **overrides})
        self.image_encoder = SwinModel(config, add_pooling_layer=False)
        if gradient_checkpointing:
            from cxrclip.text_encoder import enable_checkpointing

            enable_checkpointing(self.image_encoder)
        self.out_dim = int(config.hidden_size)
        self._patch = int(config.patch_size)
        self._merges = len(config.depths) - 1
        self._window = int(config.window_size)

    def _check_size(self, height: int, width: int) -> None:
        # transformers' Swin fails with a cryptic shape error when a stage is smaller than a window.
        h, w = swin_grid(height, width, self._patch, self._merges)
        if min(h, w) < self._window:
            minimum = self._window * self._patch * 2**self._merges
            raise ValueError(f"Swin input {height}x{width} is too small: each side must be >= {minimum} px "
                             f"(final token grid {h}x{w} is smaller than the {self._window}x{self._window} window)")

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Final-stage tokens after the last LayerNorm (B, L, C)."""
        self._check_size(x.shape[-2], x.shape[-1])
        return self.image_encoder(pixel_values=x).last_hidden_state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global feature = first token, as the official CXR-CLIP code (B, C)."""
        return self.tokens(x)[:, 0]

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens reshaped to the final grid (B, C, h, w)."""
        return self.pooled_and_map(x)[1]

    def pooled_and_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` and ``feature_map`` from one pass: (B, C) and (B, C, h, w)."""
        tokens = self.tokens(x)
        h, w = swin_grid(x.shape[-2], x.shape[-1], self._patch, self._merges)
        if h * w != tokens.shape[1]:
            raise ValueError(f"cannot reshape {tokens.shape[1]} Swin tokens to a {h}x{w} grid")
        return tokens[:, 0], tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)


@register_image_encoder("swin_tiny")
def swin_tiny(image_size: int = 224, gradient_checkpointing: bool = False, **overrides: object) -> SwinEncoder:
    """Swin-Tiny (patch 4, window 7); ``overrides`` change SwinConfig values (tests use small ones)."""
    return SwinEncoder(image_size, gradient_checkpointing, **overrides)
