"""Where each finding is drawn in each view: boxes for the pointing game of heatmaps.

A finding's region in a view is where drawing it changed the view's attenuation
image by at least ``CHANGE_SHARE`` of its largest change (findings drawn through the
anatomy use the organ they enlarge: the heart for cardiomegaly, the mediastinum for an
enlarged cardiomediastinum, the fractured rib for a fracture). Recording a region reads
the layers only: it draws nothing and draws no random numbers, so the pixels of a study
are the same with or without it.

Boxes are ``[u0, v0, u1, v1]`` in normalised image coordinates (0..1, ``u`` left to
right, ``v`` top to bottom) of the rendered (and rotated) view, one per connected part
(a bilateral effusion has two); `pixel_boxes` converts them to a written image's pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from training.phantoms.layers import Layers, compose
from training.phantoms.render import rotate

CHANGE_SHARE = 0.25     # a pixel is in the region when its change is >= this share of the largest
ORGAN_SHARE = 0.5       # organ masks: layer value >= this share of the layer's largest value
MIN_PART_SHARE = 0.05   # parts smaller than this share of the largest part are dropped

Box = list[float]
ViewRegions = dict[str, dict[str, list[Box]]]   # finding -> view -> boxes


def change_mask(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Pixels whose attenuation changed by at least ``CHANGE_SHARE`` of the largest change."""
    diff = np.abs(after - before)
    peak = float(diff.max())
    if peak <= 1e-6:
        return np.zeros(diff.shape, bool)
    return diff >= CHANGE_SHARE * peak


def organ_mask(layer: np.ndarray) -> np.ndarray:
    """Pixels of a soft organ layer at or above ``ORGAN_SHARE`` of its largest value."""
    peak = float(layer.max())
    return layer >= ORGAN_SHARE * peak if peak > 0 else np.zeros(layer.shape, bool)


def mask_boxes(mask: np.ndarray) -> list[Box]:
    """Normalised bounding boxes of the connected parts of ``mask`` (small specks dropped)."""
    if not mask.any():
        return []
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    parts = stats[1:count]
    largest = int(parts[:, cv2.CC_STAT_AREA].max())
    size_v, size_u = mask.shape
    boxes = []
    for x, y, w, h, area in parts.tolist():
        if area >= MIN_PART_SHARE * largest:
            boxes.append([round(x / size_u, 4), round(y / size_v, 4),
                          round((x + w) / size_u, 4), round((y + h) / size_v, 4)])
    return sorted(boxes)


def view_boxes(mask: np.ndarray, rotation_deg: float) -> list[Box]:
    """Boxes of a mask drawn before the view's rotation, in the rotated (displayed) view."""
    turned = rotate(mask.astype(np.float32), rotation_deg) >= 0.5
    return mask_boxes(turned)


def anatomical_mask(name: str, layers: Layers, fractured_bone: np.ndarray | None) -> np.ndarray | None:
    """Mask of a finding drawn through the anatomy, or None for one drawn by a drawer."""
    if name == "Cardiomegaly":
        return organ_mask(layers.heart)
    if name == "Enlarged Cardiomediastinum":
        return organ_mask(layers.mediastinum)
    if name == "Fracture":
        return None if fractured_bone is None else change_mask(fractured_bone, layers.bone)
    return None


class RegionRecorder:
    """Collects each finding's boxes while a view is drawn (see `training.phantoms.study`)."""

    def __init__(self) -> None:
        self.regions: ViewRegions = {}
        self._masks: dict[str, np.ndarray] = {}
        self._before: np.ndarray | None = None

    def before(self, layers: Layers) -> None:
        """Remember the view's attenuation before the next finding is drawn."""
        self._before = compose(layers)

    def after(self, name: str, layers: Layers) -> None:
        """Record what drawing finding ``name`` changed since `before`."""
        if self._before is not None:
            self._masks[name] = change_mask(self._before, compose(layers))
            self._before = None

    def anatomy(self, names: list[str], layers: Layers, fractured_bone: np.ndarray | None) -> None:
        """Record the findings drawn through the anatomy (heart, mediastinum, rib)."""
        for name in names:
            mask = anatomical_mask(name, layers, fractured_bone)
            if mask is not None:
                self._masks[name] = mask

    def finish_view(self, view: str, rotation_deg: float) -> None:
        """Turn the view's masks into boxes in the displayed view."""
        for name, mask in self._masks.items():
            self.regions.setdefault(name, {})[view] = view_boxes(mask, rotation_deg)
        self._masks = {}


def pixel_boxes(boxes: list[Box], size: int) -> list[list[int]]:
    """Normalised boxes as ``[x0, y0, x1, y1]`` pixels (x1, y1 exclusive) of a ``size`` image."""
    return [[int(np.floor(u0 * size)), int(np.floor(v0 * size)),
             int(np.ceil(u1 * size)), int(np.ceil(v1 * size))] for u0, v0, u1, v1 in boxes]
