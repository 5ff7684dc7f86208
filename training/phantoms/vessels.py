"""Pulmonary vessel markings: random branching trees that taper from the hilum.

Drawing them matters: a pneumothorax is recognised by the *absence* of markings
beyond the pleural line, and edema by their blurring.
"""
from __future__ import annotations

import numpy as np

from training.phantoms.draw import Canvas, blur


def _branch(canvas: Canvas, rng: np.random.Generator, p: np.ndarray, angle: float,
            length: float, width: float, depth: int) -> None:
    n = 4
    pts = [p]
    a = angle
    step = length / n
    for _ in range(n):
        a += rng.normal(0, 0.12)
        pts.append(pts[-1] + step * np.array([np.cos(a), np.sin(a)]))
    arr = np.array(pts)
    canvas.polyline(arr, width, value=min(1.0, 0.3 + width * 70))
    if depth <= 0:
        return
    for k in range(2):
        child_at = arr[int(rng.integers(2, n + 1))]
        da = (0.35 + rng.uniform(0, 0.35)) * (1 if k == 0 else -1)
        _branch(canvas, rng, child_at, a + da, length * rng.uniform(0.6, 0.8),
                width * 0.72, depth - 1)


def vessel_tree(size: int, rng: np.random.Generator, root: tuple[float, float],
                angles: list[float], length: float, width: float = 0.0055,
                depth: int = 4) -> np.ndarray:
    """Vessel markings fanning out from ``root`` along ``angles`` (radians, image axes)."""
    canvas = Canvas(size)
    base = np.asarray(root, np.float64)
    for ang in angles:
        _branch(canvas, rng, base, ang + rng.normal(0, 0.08), length * rng.uniform(0.38, 0.48),
                width, depth)
    return blur(canvas.read(), 0.0015)
