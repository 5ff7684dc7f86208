"""Colormaps for heatmap overlays, in numpy, plus colour-bar data.

A colormap is a few control points (position in [0, 1] -> sRGB colour),
interpolated linearly into a 256-entry lookup table. The default "ember" map
was designed for this project to rise steadily in lightness (dark violet ->
red -> orange -> pale yellow) so that brighter means a stronger match, and to
stay readable over a grey radiograph. NaN values (outside the model's crop)
become fully transparent.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Colormap:
    """A named colormap given by control points, with a cached lookup table."""

    name: str
    positions: tuple[float, ...]
    colors: tuple[tuple[int, int, int], ...]
    _lut: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64)
        if len(pos) < 2 or len(pos) != len(self.colors):
            raise ValueError(f"colormap {self.name!r}: need >= 2 positions and one colour each, "
                             f"got {len(pos)} positions and {len(self.colors)} colours")
        if pos[0] != 0.0 or pos[-1] != 1.0 or np.any(np.diff(pos) <= 0):
            raise ValueError(f"colormap {self.name!r}: positions must rise strictly from 0 to 1, "
                             f"got {self.positions}")
        object.__setattr__(self, "_lut", _build_lut(pos, np.asarray(self.colors, float), 256))

    @property
    def lut(self) -> np.ndarray:
        """256 x 3 uint8 sRGB table, low to high."""
        return self._lut

    def rgba_table(self, n: int = 256) -> np.ndarray:
        """``n x 4`` uint8 RGBA table (opaque), e.g. for `ColorBar.colors`."""
        if n < 2:
            raise ValueError(f"colour table needs n >= 2 entries, got {n}")
        idx = np.round(np.linspace(0, 255, n)).astype(np.intp)
        table = np.empty((n, 4), np.uint8)
        table[:, :3] = self._lut[idx]
        table[:, 3] = 255
        return table


def _build_lut(positions: np.ndarray, colors: np.ndarray, n: int) -> np.ndarray:
    x = np.linspace(0.0, 1.0, n)
    channels = [np.interp(x, positions, colors[:, c]) for c in range(3)]
    return np.clip(np.round(np.stack(channels, axis=1)), 0, 255).astype(np.uint8)


EMBER = Colormap(
    "ember",
    (0.0, 0.2, 0.45, 0.7, 0.88, 1.0),
    ((14, 6, 40), (86, 18, 110), (186, 42, 78), (238, 108, 30), (250, 186, 44), (252, 250, 196)),
)
ICE_FIRE = Colormap(
    "ice-fire",
    (0.0, 0.25, 0.5, 0.75, 1.0),
    ((40, 160, 230), (30, 60, 140), (20, 20, 24), (160, 40, 30), (250, 190, 60)),
)
COLORMAPS: dict[str, Colormap] = {c.name: c for c in (EMBER, ICE_FIRE)}


def get_colormap(name: str) -> Colormap:
    """The colormap called ``name``; KeyError lists the known names."""
    try:
        return COLORMAPS[name]
    except KeyError:
        raise KeyError(f"unknown colormap {name!r}; known: {sorted(COLORMAPS)}") from None


def robust_range(values: np.ndarray, low: float = 2.0, high: float = 98.0) -> tuple[float, float]:
    """Percentile range of the finite values (so one hot pixel does not flatten the map).

    Returns ``(0.0, 1.0)`` when there are no finite values, and widens a zero-width
    range by a tiny amount so callers can always divide by ``vmax - vmin``.
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    vmin, vmax = (float(v) for v in np.percentile(finite, [low, high]))
    if vmax - vmin < 1e-6:
        vmin, vmax = vmin - 5e-4, vmax + 5e-4
    return vmin, vmax


def to_rgba(values: np.ndarray, vmin: float, vmax: float, cmap: Colormap = EMBER,
            alpha_floor: float = 0.0) -> np.ndarray:
    """Map a 2D float array to ``H x W x 4`` uint8 RGBA through ``cmap``.

    Values are scaled to [0, 1] over ``vmin..vmax`` and clipped. NaN or inf ->
    alpha 0. Alpha rises linearly from ``alpha_floor`` (at vmin) to 1 (at vmax),
    so weak matches let the radiograph show through and strong ones stand out.
    """
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"heatmap must be 2D, got shape {arr.shape}")
    if not np.isfinite(vmin) or not np.isfinite(vmax) or vmax <= vmin:
        raise ValueError(f"colour range needs finite vmin < vmax, got {vmin}, {vmax}")
    if not 0.0 <= alpha_floor <= 1.0:
        raise ValueError(f"alpha_floor must be in [0, 1], got {alpha_floor}")
    valid = np.isfinite(arr)
    t = np.clip((np.where(valid, arr, vmin) - vmin) / (vmax - vmin), 0.0, 1.0)
    rgba = np.empty(arr.shape + (4,), np.uint8)
    rgba[..., :3] = cmap.lut[np.round(t * 255).astype(np.intp)]
    alpha = alpha_floor + (1.0 - alpha_floor) * t
    rgba[..., 3] = np.where(valid, np.round(alpha * 255), 0).astype(np.uint8)
    return rgba


def colorbar_ticks(vmin: float, vmax: float, count: int = 5) -> list[tuple[float, str]]:
    """``count`` evenly spaced ticks over the range as (fraction 0..1, label)."""
    if count < 2:
        raise ValueError(f"need at least 2 ticks, got {count}")
    span = vmax - vmin
    digits = 3 if span < 0.1 else 2
    return [(i / (count - 1), f"{vmin + span * i / (count - 1):.{digits}f}") for i in range(count)]


def colorbar_image(cmap: Colormap, length: int, thickness: int,
                   vertical: bool = True) -> np.ndarray:
    """An RGB image of the colour bar; vertical bars have high values at the top."""
    if length < 2 or thickness < 1:
        raise ValueError(f"colour bar needs length >= 2 and thickness >= 1, "
                         f"got {length}, {thickness}")
    idx = np.round(np.linspace(0, 255, length)).astype(np.intp)
    strip = cmap.lut[idx]
    if vertical:
        return np.ascontiguousarray(np.repeat(strip[::-1, None, :], thickness, axis=1))
    return np.ascontiguousarray(np.repeat(strip[None, :, :], thickness, axis=0))


def blend_preview(gray: np.ndarray, rgba: np.ndarray, opacity: float) -> np.ndarray:
    """Composite an overlay on a grey image (for exports and tests): ``H x W x 3`` uint8."""
    if gray.shape != rgba.shape[:2]:
        raise ValueError(f"grey image {gray.shape} and overlay {rgba.shape[:2]} differ in size")
    a = (rgba[..., 3:4].astype(np.float32) / 255.0) * float(opacity)
    base = np.repeat(np.asarray(gray, np.float32)[..., None], 3, axis=2)
    out = base * (1.0 - a) + rgba[..., :3].astype(np.float32) * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def names() -> Sequence[str]:
    """Names of the available colormaps."""
    return tuple(COLORMAPS)
