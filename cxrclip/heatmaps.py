"""Heatmaps of one text on one view, on the model's grid (numpy only, no torch).

Four kinds, all from the image tower's projected feature map ``P`` (D, h, w) (the
ONNX image graph's ``feature_map`` output) or from the image embedding itself:

- ``similarity``: cosine of each location's embedding with the prompt.
- ``probability``: softmax(s · [cos(negative), cos(prompt)]) per location.
- ``contribution``: each location's exact share of the view's logit. The image
  embedding is the L2-normalised mean of ``P`` over locations (average pooling, then a
  linear projection), so the view's logit s · (cos(g, t+) − cos(g, t−)) with
  g = mean(P) splits into a sum over locations of s · P[:, i, j] · (t+ − t−) / (h w |g|).
  This is gradient × activation on the projected feature map (the logit is linear in P
  for a fixed |g|); unlike the cosine it keeps each location's magnitude, so a location
  the model barely uses cannot light up. With a ``reference`` map R (the mean map of
  normal chests, `cxrclip.heatmap_reference`) each location's share of R, under the
  view's own normaliser, is subtracted: gradient × (activation − baseline), so locations
  that weigh the same on every chest (mediastinum, borders) no longer win the peak.
- ``occlusion``: how much the view's logit drops when a square patch of the model input
  is replaced by the input's mean; one image forward per patch position.

`Engine.similarity_map` resamples any of them onto the view's pixels.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAP_KINDS = ("similarity", "probability", "contribution", "occlusion")


def unit_channels(fmap: np.ndarray) -> np.ndarray:
    """L2-normalise a (D, h, w) map along D (as torch's F.normalize, eps 1e-12)."""
    return fmap / np.maximum(np.linalg.norm(fmap, axis=0, keepdims=True), np.float32(1e-12))


def cosine_map(unit_fmap: np.ndarray, text: np.ndarray) -> np.ndarray:
    """(h, w) cosine of each unit location embedding with a unit text embedding."""
    return np.einsum("dhw,d->hw", unit_fmap, text).astype(np.float32)


def contribution_map(fmap: np.ndarray, positive: np.ndarray, negative: np.ndarray,
                     logit_scale: float, reference: np.ndarray | None = None) -> np.ndarray:
    """(h, w) logit contribution of each location; sums to the view's logit (see module doc).

    With ``reference`` (D, h, w) it is the contribution of ``fmap - reference``: the sum is
    then the view's logit minus the logit the reference map would have at the view's norm."""
    pooled = fmap.mean(axis=(1, 2))
    norm = max(float(np.linalg.norm(pooled)), 1e-12)
    direction = (positive - negative).astype(np.float32)
    cells = fmap.shape[1] * fmap.shape[2]
    relative = fmap if reference is None else fmap - reference
    return (logit_scale * np.einsum("dhw,d->hw", relative, direction) / (cells * norm)).astype(np.float32)


@dataclass(frozen=True)
class OcclusionGrid:
    """Patch size and stride (model-input pixels) of an occlusion map."""

    patch: int
    stride: int

    @classmethod
    def for_input(cls, size: int, cells: int = 8) -> OcclusionGrid:
        """About ``cells`` x ``cells`` positions, patches twice the stride (half overlap)."""
        stride = max(1, size // cells)
        return cls(patch=min(size, 2 * stride), stride=stride)

    def starts(self, size: int) -> list[int]:
        """Top-left offsets of the patches along one side (the last one flush with the edge)."""
        last = max(0, size - self.patch)
        starts = list(range(0, last + 1, self.stride))
        return starts if starts[-1] == last else [*starts, last]


def occluded_inputs(pixels: np.ndarray, grid: OcclusionGrid) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Copies of one preprocessed input (C, S, S), each with one patch set to the input's
    per-channel mean, and the patches' top-left corners."""
    size = pixels.shape[-1]
    fill = pixels.mean(axis=(1, 2), keepdims=True)
    corners = [(y, x) for y in grid.starts(size) for x in grid.starts(size)]
    batch = np.repeat(pixels[None], len(corners), axis=0)
    for k, (y, x) in enumerate(corners):
        batch[k, :, y:y + grid.patch, x:x + grid.patch] = fill
    return batch, corners


def occlusion_map(encode: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray,
                  positive: np.ndarray, negative: np.ndarray, logit_scale: float,
                  grid: OcclusionGrid, batch_size: int = 32) -> np.ndarray:
    """(n, n) drop of the view's logit per patch position (n = positions per side).

    ``encode`` maps preprocessed inputs (B, C, S, S) to unit embeddings (B, D). Cell
    (i, j) is the mean drop over the patches covering the centre of stride cell (i, j).
    """
    direction = (positive - negative).astype(np.float32)
    base = float(encode(pixels[None])[0] @ direction)
    batch, corners = occluded_inputs(pixels, grid)
    scores = np.concatenate([encode(batch[k:k + batch_size]) @ direction
                             for k in range(0, len(batch), batch_size)])
    size = pixels.shape[-1]
    n = len(range(0, size, grid.stride))
    total, count = np.zeros((n, n), np.float64), np.zeros((n, n), np.float64)
    centres = (np.arange(n) + 0.5) * (size / n)
    for (y, x), score in zip(corners, scores):
        rows = (centres >= y) & (centres < y + grid.patch)
        cols = (centres >= x) & (centres < x + grid.patch)
        total[np.ix_(rows, cols)] += base - float(score)
        count[np.ix_(rows, cols)] += 1
    return (logit_scale * total / np.maximum(count, 1)).astype(np.float32)
