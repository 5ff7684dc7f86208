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
  is replaced by the input's mean; one image forward per patch position. The occluded
  embeddings do not depend on the text, so one set per view serves every prompt.
- ``agreement``: the geometric mean of the positive parts of ``contribution`` and
  ``occlusion`` on the view's pixels, sqrt(max(c, 0) * max(o, 0)). Both are in logit units,
  so the map is too (views share a colour range and a view without evidence stays dark);
  it is high only where the linear attribution and the masking test agree. On held-out
  phantoms it points at all five measured findings (docs/trust.md): contribution alone
  drifts about a cell off small opacities, occlusion alone misses basal effusions.

`Engine.similarity_map` resamples any of them onto the view's pixels.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAP_KINDS = ("similarity", "probability", "contribution", "occlusion", "agreement")


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


@dataclass(frozen=True)
class OccludedEmbeddings:
    """Unit embeddings of one input and of its occluded copies (text-independent)."""

    base: np.ndarray                   # (D,) the unoccluded input
    occluded: np.ndarray               # (N, D) one per patch
    corners: list[tuple[int, int]]     # the patches' top-left corners, as `occluded_inputs`
    size: int                          # side of the model input
    grid: OcclusionGrid


def occluded_embeddings(encode: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray,
                        grid: OcclusionGrid, batch_size: int = 32) -> OccludedEmbeddings:
    """Encode a preprocessed input (C, S, S) and its occluded copies. ``encode`` maps inputs
    (B, C, S, S) to unit embeddings (B, D)."""
    base = np.asarray(encode(pixels[None])[0], np.float32)
    batch, corners = occluded_inputs(pixels, grid)
    occluded = np.concatenate([np.asarray(encode(batch[k:k + batch_size]), np.float32)
                               for k in range(0, len(batch), batch_size)])
    return OccludedEmbeddings(base, occluded, corners, int(pixels.shape[-1]), grid)


def occlusion_map_from(embeddings: OccludedEmbeddings, positive: np.ndarray, negative: np.ndarray,
                       logit_scale: float) -> np.ndarray:
    """(n, n) drop of the view's logit per patch position (n = positions per side).

    Cell (i, j) is the mean drop over the patches covering the centre of stride cell (i, j).
    """
    direction = (positive - negative).astype(np.float32)
    base = float(embeddings.base @ direction)
    scores = embeddings.occluded @ direction
    size, grid = embeddings.size, embeddings.grid
    n = len(range(0, size, grid.stride))
    total, count = np.zeros((n, n), np.float64), np.zeros((n, n), np.float64)
    centres = (np.arange(n) + 0.5) * (size / n)
    for (y, x), score in zip(embeddings.corners, scores):
        rows = (centres >= y) & (centres < y + grid.patch)
        cols = (centres >= x) & (centres < x + grid.patch)
        total[np.ix_(rows, cols)] += base - float(score)
        count[np.ix_(rows, cols)] += 1
    return (logit_scale * total / np.maximum(count, 1)).astype(np.float32)


def occlusion_map(encode: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray,
                  positive: np.ndarray, negative: np.ndarray, logit_scale: float,
                  grid: OcclusionGrid, batch_size: int = 32) -> np.ndarray:
    """`occlusion_map_from` the embeddings of one input (``encode`` as `occluded_embeddings`)."""
    return occlusion_map_from(occluded_embeddings(encode, pixels, grid, batch_size),
                              positive, negative, logit_scale)


def agreement_map(contribution: np.ndarray, occlusion: np.ndarray) -> np.ndarray:
    """sqrt(max(c, 0) * max(o, 0)) of two maps on the same pixels (NaN stays NaN): where a
    location both carries the logit (contribution) and lowers it when masked (occlusion)."""
    if contribution.shape != occlusion.shape:
        raise ValueError(f"agreement_map: maps of shapes {contribution.shape} and {occlusion.shape}; "
                         "resample both onto the same pixels first")
    c = np.asarray(contribution, np.float32)
    o = np.asarray(occlusion, np.float32)
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.maximum(c, 0) * np.maximum(o, 0)).astype(np.float32)
