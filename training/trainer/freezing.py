"""Freezing the bottom of the text tower: the embeddings and the first N transformer layers.

On a CPU the text tower costs about six times the demo image tower per training step
(benchmarks/RESULTS.md); most of it is the backward pass. Layers whose parameters are
frozen and whose inputs need no gradient build no autograd graph, so freezing the
embeddings and the bottom layers removes their backward pass and their optimizer state
while the top layers and the projection still adapt to report language.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from training.config import ConfigError


def transformer_parts(text_model: Any) -> tuple[nn.Module, list[nn.Module]]:
    """The embeddings and the list of layers of a BERT-style ``transformers`` model."""
    embeddings = getattr(text_model, "embeddings", None)
    layers = getattr(getattr(text_model, "encoder", None), "layer", None)
    if embeddings is None or layers is None:
        raise ConfigError(f"train.freeze_text_layers: the text model {type(text_model).__name__} "
                          "has no embeddings/encoder.layer to freeze (BERT-style models only)")
    return embeddings, list(layers)


def freeze_text_layers(model: nn.Module, count: int) -> int:
    """Freeze the text embeddings and the first ``count`` layers; returns the parameters frozen.

    ``count`` 0 leaves everything trainable; ``count`` equal to the number of layers freezes
    the whole transformer (only the projection learns).
    """
    if count <= 0:
        return 0
    embeddings, layers = transformer_parts(model.text_encoder.text_encoder)
    if count > len(layers):
        raise ConfigError(f"train.freeze_text_layers: {count} is more than the text model's "
                          f"{len(layers)} layers (allowed 0..{len(layers)})")
    frozen = 0
    for module in [embeddings, *layers[:count]]:
        for param in module.parameters():
            if param.requires_grad:
                param.requires_grad_(False)
                frozen += param.numel()
    return frozen
