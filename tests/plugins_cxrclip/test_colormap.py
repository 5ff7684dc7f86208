"""Heatmap colormaps: lookup tables, RGBA mapping, colour bars."""
from __future__ import annotations

import numpy as np
import pytest

from plugins.cxrclip_findings.colormap import (
    EMBER, Colormap, blend_preview, colorbar_image, colorbar_ticks, get_colormap, robust_range,
    to_rgba)


def _lightness(rgb: np.ndarray) -> np.ndarray:
    """CIE L* of sRGB colours (0..255)."""
    c = rgb.astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = lin @ np.array([0.2126, 0.7152, 0.0722])
    return np.where(y > 216 / 24389, 116 * np.cbrt(y) - 16, y * 24389 / 27)


def test_ember_endpoints_and_monotonic_lightness():
    assert tuple(EMBER.lut[0]) == (14, 6, 40)
    assert tuple(EMBER.lut[-1]) == (252, 250, 196)
    assert np.all(np.diff(_lightness(EMBER.lut)) > -0.5)  # rises (up to rounding)
    assert _lightness(EMBER.lut)[-1] - _lightness(EMBER.lut)[0] > 80


def test_to_rgba_known_values_and_nan_transparent():
    values = np.array([[0.0, 0.5, 1.0, np.nan]], np.float32)
    rgba = to_rgba(values, 0.0, 1.0, EMBER)
    assert rgba.shape == (1, 4, 4) and rgba.dtype == np.uint8
    assert tuple(rgba[0, 0, :3]) == tuple(EMBER.lut[0])
    assert tuple(rgba[0, 2, :3]) == tuple(EMBER.lut[255])
    assert tuple(rgba[0, 1, :3]) == tuple(EMBER.lut[128])
    assert list(rgba[0, :, 3]) == [0, 128, 255, 0]  # linear alpha ramp, NaN transparent


def test_to_rgba_clips_and_alpha_floor():
    rgba = to_rgba(np.array([[-5.0, 5.0]]), 0.0, 1.0, alpha_floor=0.2)
    assert tuple(rgba[0, 0, :3]) == tuple(EMBER.lut[0])
    assert rgba[0, 0, 3] == 51 and rgba[0, 1, 3] == 255


def test_to_rgba_rejects_bad_range():
    with pytest.raises(ValueError, match="vmin < vmax"):
        to_rgba(np.zeros((2, 2)), 1.0, 1.0)


def test_robust_range_ignores_nan_and_outliers():
    values = np.concatenate([np.linspace(0, 1, 101), [np.nan, 1000.0]])
    vmin, vmax = robust_range(values)
    assert vmin == pytest.approx(0.0202, abs=1e-3)
    assert vmax < 2.0
    assert robust_range(np.full(4, np.nan)) == (0.0, 1.0)
    lo, hi = robust_range(np.full(5, 0.3))
    assert lo < 0.3 < hi


def test_colorbar_image_and_ticks():
    bar = colorbar_image(EMBER, 256, 3)
    assert bar.shape == (256, 3, 3)
    assert tuple(bar[0, 0]) == tuple(EMBER.lut[255])  # top = high
    assert tuple(bar[-1, 2]) == tuple(EMBER.lut[0])
    assert colorbar_ticks(0.1, 0.3, 3) == [(0.0, "0.10"), (0.5, "0.20"), (1.0, "0.30")]
    assert colorbar_ticks(0.01, 0.05, 2) == [(0.0, "0.010"), (1.0, "0.050")]
    table = EMBER.rgba_table(16)
    assert table.shape == (16, 4) and np.all(table[:, 3] == 255)


def test_blend_preview_math():
    gray = np.full((1, 2), 100, np.uint8)
    rgba = np.array([[[200, 0, 0, 255], [200, 0, 0, 0]]], np.uint8)
    out = blend_preview(gray, rgba, 0.5)
    assert tuple(out[0, 0]) == (150, 50, 50)
    assert tuple(out[0, 1]) == (100, 100, 100)


def test_colormap_validation_and_lookup():
    with pytest.raises(ValueError, match="rise strictly"):
        Colormap("bad", (0.0, 0.0, 1.0), ((0, 0, 0),) * 3)
    with pytest.raises(KeyError, match="known"):
        get_colormap("nope")
    assert get_colormap("ember") is EMBER
