"""The CXR-CLIP dual encoder: image encoder, text encoder, projections, logit scale.

Submodule names (``image_encoder``, ``text_encoder``, ``image_projection``,
``text_projection``, ``logit_scale``) match the published CXR-CLIP checkpoints,
so their state dicts load key for key (see ``cxrclip.convert_official``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cxrclip.config import ModelConfig
from cxrclip.projection import build_projection
from cxrclip.registry import create_model
from cxrclip.text_encoder import TextEncoder


def _normalize(x: torch.Tensor, normalize: bool, dim: int = -1) -> torch.Tensor:
    return F.normalize(x, dim=dim) if normalize else x


class CXRClip(nn.Module):
    """Image-text contrastive model of CXR-CLIP (MICCAI 2023).

    Build for training with ``CXRClip(config, pretrained_text=True)`` (loads the
    text encoder weights from ``config.text.path``); checkpoints are loaded with
    :func:`cxrclip.checkpoint.load_model`, which also attaches ``tokenizer``.
    """

    def __init__(self, config: ModelConfig | dict[str, Any], *, pretrained_text: bool = False,
                 text_model_config: Any = None):
        super().__init__()
        self.config = ModelConfig.from_dict(config)
        image_cfg = self.config.image
        self.image_encoder = create_model(
            image_cfg.name,
            image_size=image_cfg.image_size,
            gradient_checkpointing=image_cfg.gradient_checkpointing,
            **image_cfg.options,
        )
        self.text_encoder = TextEncoder(self.config.text, pretrained_text, text_model_config)
        self.image_projection = build_projection(self.image_encoder.out_dim, self.config.projection)
        self.text_projection = build_projection(self.text_encoder.out_dim, self.config.projection)
        self.logit_scale = nn.Parameter(torch.tensor(self.config.logit_scale_init, dtype=torch.float32))
        self.tokenizer: Any = None

    @property
    def embed_dim(self) -> int:
        """Width of the shared embedding space."""
        return self.config.projection.dim

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Preprocessed images (B, 3, S, S) -> embeddings (B, D), L2-normalised by default."""
        return _normalize(self.image_projection(self.image_encoder(pixels)), normalize)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    normalize: bool = True) -> torch.Tensor:
        """Token ids and mask (B, L) -> embeddings (B, D), L2-normalised by default."""
        return _normalize(self.text_projection(self.text_encoder(input_ids, attention_mask)), normalize)

    def image_feature_map(self, pixels: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Projected per-location embeddings (B, D, h, w) of the last feature map.

        With the linear head and ResNet, the spatial mean of this map equals the
        un-normalised global image embedding. ``normalize`` L2-normalises each location.
        """
        features = self.image_encoder.feature_map(pixels)  # (B, C, h, w)
        projected = self.image_projection(features.permute(0, 2, 3, 1))  # (B, h, w, D)
        return _normalize(projected, normalize).permute(0, 3, 1, 2).contiguous()

    def encode_image_and_map(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`encode_image` (normalised, B x D) and `image_feature_map` (B x D x h x w, not
        normalised): from one image-tower pass when the encoder has ``pooled_and_map`` (the
        bundled ResNet and Swin encoders), else from two."""
        both = getattr(self.image_encoder, "pooled_and_map", None)
        if both is not None:
            pooled, features = both(pixels)
        else:
            pooled, features = self.image_encoder(pixels), self.image_encoder.feature_map(pixels)
        projected = self.image_projection(features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return F.normalize(self.image_projection(pooled), dim=-1), projected

    def _encode_views(self, images: torch.Tensor, images_view2: torch.Tensor | None,
                      feature_maps: bool) -> dict[str, torch.Tensor]:
        both = images if images_view2 is None else torch.cat([images, images_view2])
        if feature_maps:
            emb, fmap = self.encode_image_and_map(both)
        else:
            emb, fmap = self.encode_image(both), None
        n = images.shape[0]
        out = {"image_emb": emb[:n]}
        if images_view2 is not None:
            out["image_emb_view2"] = emb[n:]
        if fmap is not None:
            out["image_map"] = fmap[:n]
            if images_view2 is not None:
                out["image_map_view2"] = fmap[n:]
        return out

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                images_view2: torch.Tensor | None = None, input_ids_section2: torch.Tensor | None = None,
                attention_mask_section2: torch.Tensor | None = None,
                feature_maps: bool = False) -> dict[str, torch.Tensor]:
        """Normalised embeddings for the loss.

        Returns ``image_emb``, ``text_emb``, ``logit_scale`` (the multiplier
        ``exp(self.logit_scale)``) and, when the second view / section are given,
        ``image_emb_view2`` / ``text_emb_section2``; the keys match the arguments of
        ``cxrclip.losses.CXRClipLoss.forward``. With ``feature_maps`` also ``image_map``
        (and ``image_map_view2``): the projected feature maps (B, D, h, w) of the same pass,
        for the dense label term.
        """
        out = self._encode_views(images, images_view2, feature_maps)
        out.update({"text_emb": self.encode_text(input_ids, attention_mask),
                    "logit_scale": self.logit_scale.exp()})
        if input_ids_section2 is not None:
            if attention_mask_section2 is None:
                raise ValueError("input_ids_section2 needs attention_mask_section2 too")
            out["text_emb_section2"] = self.encode_text(input_ids_section2, attention_mask_section2)
        return out
