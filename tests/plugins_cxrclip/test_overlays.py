"""Heatmap overlay layers: colour range shared by the views, and evidence maps drawn from 0."""
from __future__ import annotations

import numpy as np

from plugins.cxrclip_findings.overlays import evidence_range, heatmap_layers


def test_views_share_one_colour_range_and_the_caption() -> None:
    maps = {"pa": np.linspace(-1, 1, 100, dtype=np.float32).reshape(10, 10),
            "lat": np.zeros((10, 10), np.float32)}
    layers = heatmap_layers(maps, "Edema", what="contribution to the score")
    bars = {layer.colorbar for layer in layers.values()}
    assert len(bars) == 1
    bar = bars.pop()
    assert bar.label == "contribution to the score: Edema"
    assert bar.vmin < -0.9 and bar.vmax > 0.9


def test_an_evidence_map_starts_at_zero_and_no_evidence_is_clear() -> None:
    heat = np.zeros((10, 10), np.float32)
    heat[2, 3] = 4.0
    heat[0, 0] = np.nan
    assert evidence_range(heat) == (0.0, 4.0)           # the 98th percentile is 0: the maximum instead
    layer = heatmap_layers({"pa": heat}, "Pneumothorax", what="evidence for the score")["pa"]
    assert layer.rgba[2, 3, 3] == 255 and layer.rgba[5, 5, 3] == 0 and layer.rgba[0, 0, 3] == 0
    none = heatmap_layers({"pa": np.zeros((8, 8), np.float32)}, "Edema")["pa"]
    assert int(none.rgba[..., 3].max()) == 0            # no evidence anywhere: nothing drawn


def test_a_signed_map_keeps_its_percentile_range() -> None:
    values = np.arange(-50, 50, dtype=np.float32).reshape(10, 10)
    low, high = evidence_range(values)
    assert low == np.percentile(values, 2) and high == np.percentile(values, 98)
