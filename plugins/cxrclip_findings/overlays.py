"""Heatmap overlay layers: per-location maps (where a prompt's score comes from) -> RGBA `OverlayLayer`s with one shared colour bar."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from plugins.cxrclip_findings.colormap import get_colormap, robust_range, to_rgba
from viewer.plugin_api import ColorBar, OverlayLayer

LAYER_NAME = "cxrclip-heatmap"


def heatmap_layers(maps: dict[str, np.ndarray], label: str, opacity: float = 0.5,
                   visible: bool = True, what: str = "contribution to the score",
                   colormap: str = "ember") -> dict[str, OverlayLayer]:
    """One overlay per view; all views share one colour range so they compare directly.
    ``what``: what the maps show (the colour bar's caption, before the label), e.g. the
    plugin service's `heatmap_caption`."""
    if not maps:
        return {}
    cmap = get_colormap(colormap)
    step = max(1, max(max(m.shape) for m in maps.values()) // 256)  # percentiles on a sample
    values = np.concatenate([np.asarray(m, np.float32)[::step, ::step].ravel()
                             for m in maps.values()])
    vmin, vmax = evidence_range(values)
    bar = ColorBar(cmap.name, vmin, vmax, f"{what}: {label}",
                   colors=cmap.rgba_table(64))
    return {view_id: OverlayLayer(LAYER_NAME, to_rgba(m, vmin, vmax, cmap), opacity, visible, bar)
            for view_id, m in maps.items()}


def evidence_range(values: np.ndarray) -> tuple[float, float]:
    """The colour range of maps: the robust (2nd-98th percentile) range, from 0 for maps
    that are never negative (agreement maps: 0 means no evidence, drawn clear, even when no
    location of any view has any)."""
    finite = values[np.isfinite(values)]
    if not finite.size or float(finite.min()) < 0.0:
        return robust_range(values)
    high = float(np.percentile(finite, 98.0))
    return 0.0, max(high if high > 1e-6 else float(finite.max()), 1e-6)


def restyle(layers: dict[str, OverlayLayer], opacity: float | None = None,
            visible: bool | None = None) -> dict[str, OverlayLayer]:
    """Copies of ``layers`` with a new opacity and/or visibility (pixels are shared)."""
    changes: dict[str, object] = {}
    if opacity is not None:
        changes["opacity"] = float(opacity)
    if visible is not None:
        changes["visible"] = bool(visible)
    return {view_id: replace(layer, **changes) for view_id, layer in layers.items()}
