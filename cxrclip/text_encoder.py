"""Text encoder: any BERT-family transformers model from a local directory.

The transformers model is stored as ``self.text_encoder`` so that keys read
``text_encoder.text_encoder.*`` in the full model, as in the published
checkpoints. Pooling turns token states into one vector per text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrclip.config import POOLINGS, TextEncoderConfig


def pool_hidden_states(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool (B, L, C) token states to (B, C).

    ``eos``: state at index ``attention_mask.sum(-1) - 1`` (the last real token, [SEP]
    for BERT; the official CXR-CLIP choice); ``bos``: index 0 ([CLS]);
    ``mean``: mean over tokens where the mask is 1.
    """
    if pooling == "bos":
        return hidden[:, 0]
    mask = attention_mask.to(hidden.dtype)
    if pooling == "eos":
        index = attention_mask.long().sum(-1).clamp(min=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]
    if pooling == "mean":
        summed = (hidden * mask.unsqueeze(-1)).sum(1)
        return summed / mask.sum(-1, keepdim=True).clamp(min=1.0)
    raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")


def enable_checkpointing(model: Any) -> None:
    """Turn on activation (gradient) checkpointing of a transformers model, any version."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _check_dir(path: str) -> Path:
    if not path:
        raise ValueError("text.path is empty: set it to a local transformers model directory")
    directory = Path(path).expanduser()
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(
            f"no transformers config.json in text encoder directory {directory}; "
            "point text.path at a local model folder (e.g. a downloaded Bio_ClinicalBERT)"
        )
    return directory


class TextEncoder(nn.Module):
    """BERT-family encoder + pooling; ``out_dim`` is the model's hidden size."""

    def __init__(self, config: TextEncoderConfig, pretrained: bool = False, model_config: Any = None):
        """Build from ``config.path``.

        ``pretrained=True`` loads the directory's weights (start of training);
        otherwise only its architecture is built (weights come from our checkpoint).
        ``model_config`` (a transformers config) skips reading the directory at all.
        """
        super().__init__()
        from transformers import AutoConfig, AutoModel

        self.config = config
        if model_config is not None:
            self.text_encoder = AutoModel.from_config(model_config)
        else:
            directory = str(_check_dir(config.path))
            if pretrained:
                self.text_encoder = AutoModel.from_pretrained(directory)
            else:
                self.text_encoder = AutoModel.from_config(AutoConfig.from_pretrained(directory))
        if config.gradient_checkpointing:
            enable_checkpointing(self.text_encoder)
        self.out_dim = int(self.text_encoder.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled text feature (B, C)."""
        out = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask)
        return pool_hidden_states(out.last_hidden_state, attention_mask, self.config.pooling)


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer saved in a local transformers directory."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_check_dir(str(path))))
