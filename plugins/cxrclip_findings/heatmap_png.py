"""A view with its heatmap, colour bar and label as one PNG (File ▸ Export ▸ CXR-CLIP heatmap).

The image is the view's default display rendering (the model's input), the
heatmap blended over it with the layer's opacity, and a strip on the right with
the colour bar (high at the top), its minimum and maximum, and the label of
what the heatmap shows (e.g. "evidence for the score vs a normal chest: large right pneumothorax").
Pure numpy + PIL, so it runs on a worker thread and is tested without Qt.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from viewer.io.private_files import write_private_with
from viewer.plugin_api import OverlayLayer

STRIP_FRACTION = 0.22
MIN_STRIP = 110
BAR_WIDTH_FRACTION = 0.25
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)


def _resize_nearest(rgba: np.ndarray, rows: int, cols: int) -> np.ndarray:
    r = (np.arange(rows) * rgba.shape[0] // rows).clip(0, rgba.shape[0] - 1)
    c = (np.arange(cols) * rgba.shape[1] // cols).clip(0, rgba.shape[1] - 1)
    return rgba[r[:, None], c[None, :]]


def blend(gray: np.ndarray, layer: OverlayLayer) -> np.ndarray:
    """RGB uint8: ``layer`` (alpha x opacity) over a grey uint8 image of any size."""
    gray = np.asarray(gray, dtype=np.uint8)
    rgba = _resize_nearest(layer.rgba, *gray.shape[:2]).astype(np.float32)
    alpha = rgba[..., 3:4] / 255.0 * (layer.opacity if layer.visible else 0.0)
    rgb = np.repeat(gray[..., None].astype(np.float32), 3, axis=2)
    return np.clip(np.rint(rgb * (1 - alpha) + rgba[..., :3] * alpha), 0, 255).astype(np.uint8)


def _bar_colors(layer: OverlayLayer, n: int) -> np.ndarray:
    bar = layer.colorbar
    table = bar.colors if bar is not None and bar.colors is not None else None
    if table is None:  # no table: a grey ramp says "low to high" at least
        ramp = np.linspace(0, 255, 2).astype(np.uint8)
        table = np.stack([ramp, ramp, ramp, np.full(2, 255, np.uint8)], axis=1)
    idx = np.linspace(0, len(table) - 1, n)
    return np.stack([np.interp(idx, np.arange(len(table)), table[:, c].astype(float))
                     for c in range(3)], axis=1).round().astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def compose(gray: np.ndarray, layer: OverlayLayer, label: str | None = None) -> np.ndarray:
    """The blended view plus the colour-bar strip, RGB uint8 ``rows x (cols + strip) x 3``."""
    image = blend(gray, layer)
    rows, cols = image.shape[:2]
    strip = max(MIN_STRIP, int(cols * STRIP_FRACTION))
    canvas = Image.new("RGB", (cols + strip, rows), BACKGROUND)
    canvas.paste(Image.fromarray(image), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = _font(max(10, rows // 40))
    line = max(12, rows // 32)
    bar = layer.colorbar
    text = label or (bar.label if bar is not None and bar.label else layer.name)
    wrapped = textwrap.wrap(text, width=max(10, strip // max(6, line // 2)))[:4]
    top = 8 + line * (len(wrapped) + 1)
    bottom = rows - 8 - line
    x0 = cols + strip // 8
    width = max(6, int(strip * BAR_WIDTH_FRACTION))
    if bottom - top >= 4:
        colors = _bar_colors(layer, bottom - top)[::-1]  # high values at the top
        column = np.repeat(colors[:, None, :], width, axis=1)
        canvas.paste(Image.fromarray(column), (x0, top))
    for i, part in enumerate(wrapped):
        draw.text((cols + 6, 6 + i * line), part, fill=TEXT, font=font)
    if bar is not None:
        draw.text((x0 + width + 4, top), f"{bar.vmax:.3g}", fill=TEXT, font=font)
        draw.text((x0 + width + 4, bottom - line), f"{bar.vmin:.3g}", fill=TEXT, font=font)
    return np.asarray(canvas)


def write_heatmap_png(path: str | Path, gray: np.ndarray, layer: OverlayLayer,
                      label: str | None = None) -> Path:
    """Save `compose` as a PNG (mode 0600, atomic)."""
    image = Image.fromarray(compose(gray, layer, label))
    return write_private_with(path, lambda fh: image.save(fh, format="PNG"))
