"""Cached per-view feature maps, so heatmaps after the first cost a dot product, not a forward.

`cxrclip.Engine.similarity_map` runs the image encoder every call. The plugin
draws a heatmap for each click on a finding or prompt, on every view, so it keeps
each view's projected, L2-normalised feature map (D x h x w, from the public
`CXRClip.image_feature_map`) and maps the per-location cosine back to the image
with `cxrclip.preprocess.map_to_image` - the same steps as the engine, with the
forward pass done once per view. A test checks the result equals
`Engine.similarity_map`.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch

from cxrclip.engine import Engine, ViewInput
from cxrclip.preprocess import map_to_image, preprocess_image


class FeatureMapCache:
    """LRU of per-view feature maps for one engine (keyed by model id and view id)."""

    def __init__(self, engine: Engine, maxsize: int = 16) -> None:
        if maxsize < 1:
            raise ValueError(f"feature map cache size must be >= 1, got {maxsize}")
        self.engine, self.maxsize = engine, maxsize
        self._maps: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.forwards = 0

    def feature_map(self, view: ViewInput) -> np.ndarray:
        """The view's normalised projected feature map (D, h, w), computed once."""
        key = (self.engine.model_id, view.view_id)
        with self._lock:
            if key in self._maps:
                self._maps.move_to_end(key)
                return self._maps[key]
        pixels = np.asarray(view.pixels)
        if pixels.ndim != 2:
            raise ValueError(f"view pixels must be a 2-D array, got shape {pixels.shape}")
        tensor = preprocess_image(pixels, self.engine.config.preprocess).unsqueeze(0)
        with torch.inference_mode():
            fmap = self.engine.model.image_feature_map(tensor.to(self.engine.device), normalize=True)
        result = fmap[0].float().cpu().numpy()
        with self._lock:
            self.forwards += 1
            self._maps[key] = result
            while len(self._maps) > self.maxsize:
                self._maps.popitem(last=False)
        return result

    def similarity_map(self, view: ViewInput, prompt: str, max_side: int | None = None
                       ) -> np.ndarray:
        """Cosine of each location with ``prompt``, in the view's image geometry (NaN outside).

        With ``max_side`` the map is computed on a proportionally smaller grid (same
        aspect, so an overlay stretched over the image lines up); the coarse model
        grid (7 x 7 for ResNet at 224 px) carries no finer detail anyway.
        """
        text = self.engine.encode_text([prompt])[0]
        coarse = np.einsum("dhw,d->hw", self.feature_map(view), text)
        height, width = np.asarray(view.pixels).shape[:2]
        scale = 1.0 if not max_side else min(1.0, max_side / max(height, width))
        out_h, out_w = max(1, round(height * scale)), max(1, round(width * scale))
        return np.asarray(map_to_image(coarse, out_h, out_w, self.engine.config.preprocess),
                          dtype=np.float32)
