"""Heatmap overlay layers: per-location maps (contribution to a prompt's score) -> RGBA `OverlayLayer`s with one shared colour bar."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from plugins.cxrclip_findings.colormap import get_colormap, robust_range, to_rgba
from viewer.plugin_api import ColorBar, OverlayLayer

LAYER_NAME = "cxrclip-heatmap"


def heatmap_layers(maps: dict[str, np.ndarray], label: str, opacity: float = 0.5,
                   visible: bool = True, against_normal: bool = False,
                   colormap: str = "ember") -> dict[str, OverlayLayer]:
    """One overlay per view; all views share one colour range so they compare directly.
    ``against_normal``: the maps are measured against a normal chest (the model folder's
    heatmap reference), and the colour bar says so."""
    if not maps:
        return {}
    cmap = get_colormap(colormap)
    step = max(1, max(max(m.shape) for m in maps.values()) // 256)  # percentiles on a sample
    values = np.concatenate([np.asarray(m, np.float32)[::step, ::step].ravel()
                             for m in maps.values()])
    vmin, vmax = robust_range(values)
    what = "contribution to the score vs a normal chest" if against_normal else "contribution to the score"
    bar = ColorBar(cmap.name, vmin, vmax, f"{what}: {label}",
                   colors=cmap.rgba_table(64))
    return {view_id: OverlayLayer(LAYER_NAME, to_rgba(m, vmin, vmax, cmap), opacity, visible, bar)
            for view_id, m in maps.items()}


def restyle(layers: dict[str, OverlayLayer], opacity: float | None = None,
            visible: bool | None = None) -> dict[str, OverlayLayer]:
    """Copies of ``layers`` with a new opacity and/or visibility (pixels are shared)."""
    changes: dict[str, object] = {}
    if opacity is not None:
        changes["opacity"] = float(opacity)
    if visible is not None:
        changes["visible"] = bool(visible)
    return {view_id: replace(layer, **changes) for view_id, layer in layers.items()}
