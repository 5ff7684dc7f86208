"""Export of a view as shown: full-resolution rendering, overlays, rotation and flips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from viewer.io.decode import DecodedImage
from viewer.plugin_api import OverlayLayer
from viewer.qt.image_source import WindowKey, render_shown


def _resize_nearest(rgba: np.ndarray, rows: int, cols: int) -> np.ndarray:
    if rgba.shape[:2] == (rows, cols):
        return rgba
    r = (np.arange(rows) * rgba.shape[0] // rows).clip(0, rgba.shape[0] - 1)
    c = (np.arange(cols) * rgba.shape[1] // cols).clip(0, rgba.shape[1] - 1)
    return rgba[r[:, None], c[None, :]]


def compose_export(shown: np.ndarray, layers: list[OverlayLayer], rotation: int,
                   flip_h: bool, flip_v: bool) -> np.ndarray:
    """Blend overlay layers over ``shown`` (alpha x opacity), then flip and rotate clockwise.

    ``shown`` is what the view shows: grey HxW or colour HxWx3. The order matches
    the image view: flips in image axes first, then the rotation. Returns grey HxW
    for a grey image without layers, RGB HxWx3 otherwise.
    """
    out: np.ndarray = shown
    if layers:
        rgb = (shown if shown.ndim == 3 else np.repeat(shown[..., None], 3, axis=2)).astype(np.float32)
        for layer in layers:
            rgba = _resize_nearest(layer.rgba, *shown.shape[:2]).astype(np.float32)
            alpha = rgba[..., 3:4] / 255.0 * layer.opacity
            rgb = rgb * (1 - alpha) + rgba[..., :3] * alpha
        out = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    if flip_h:
        out = out[:, ::-1]
    if flip_v:
        out = out[::-1]
    out = np.rot90(out, k=-(rotation // 90) % 4)
    return np.ascontiguousarray(out)


def write_png(path: Path, image: DecodedImage, key: WindowKey, layers: list[OverlayLayer],
              rotation: int, flip_h: bool, flip_v: bool) -> Path:
    """Render at full resolution, compose and save as PNG (meant for a worker thread)."""
    arr = compose_export(render_shown(image, key), layers, rotation, flip_h, flip_v)
    Image.fromarray(arr).save(path, format="PNG")
    return path
