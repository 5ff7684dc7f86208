"""Projection heads mapping encoder features into the shared embedding space.

``linear``: a single ``projection`` Linear (the published checkpoints' head).
``mlp``: ``projection`` Linear -> GELU -> ``fc`` Linear -> dropout, added back to
the first projection (residual), then ``layer_norm``. The residual keeps the
head close to linear at the start of training. L2 normalisation is applied by
the model, not here, so the heads can be applied per location of a feature map.
"""
from __future__ import annotations

import torch
from torch import nn

from cxrclip.config import ProjectionConfig


class LinearProjection(nn.Module):
    """One Linear layer; commutes with spatial averaging."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.projection = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x)


class MLPProjection(nn.Module):
    """Linear -> GELU -> Linear -> dropout, plus residual and LayerNorm."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.1):
        super().__init__()
        self.projection = nn.Linear(in_dim, out_dim)
        self.gelu = nn.GELU()
        self.fc = nn.Linear(out_dim, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.projection(x)
        return self.layer_norm(projected + self.dropout(self.fc(self.gelu(projected))))


def build_projection(in_dim: int, config: ProjectionConfig) -> nn.Module:
    """The head named by ``config.kind`` from ``in_dim`` to ``config.dim``."""
    if config.kind == "linear":
        return LinearProjection(in_dim, config.dim)
    if config.kind == "mlp":
        return MLPProjection(in_dim, config.dim, config.dropout)
    raise ValueError(f"projection.kind must be 'linear' or 'mlp', got {config.kind!r}")
