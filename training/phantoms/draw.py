"""Low-level drawing helpers for the phantom generator.

Everything works on float32 images in *normalised* coordinates: ``u`` runs left to
right and ``v`` top to bottom, both in [0, 1], so the same scene description renders
at any size. Soft edges come from a smooth step over an approximate signed distance,
curves from OpenCV anti-aliased polylines (fast, deterministic).
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_SCALE = 1 << _SHIFT


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised pixel-centre coordinates ``(U, V)``, each ``size x size`` float32."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size
    u, v = np.meshgrid(axis, axis)
    u.setflags(write=False)
    v.setflags(write=False)
    return u, v


def smooth(sd: np.ndarray, edge: float) -> np.ndarray:
    """Soft inside-mask from a signed distance (positive inside), edge width ``edge``.

    A cubic smoothstep over ``[-edge, edge]``: 0 outside, 1 inside.
    """
    x = np.clip(np.asarray(sd, np.float32) * np.float32(1.0 / max(edge, 1e-6)), -1.0, 1.0)
    return (0.5 + x * (0.75 - 0.25 * x * x)).astype(np.float32, copy=False)


def ellipse_sd(u: np.ndarray, v: np.ndarray, cu: float, cv: float, a: float, b: float,
               angle_deg: float = 0.0) -> np.ndarray:
    """Approximate signed distance to an ellipse (positive inside, normalised units)."""
    du, dv = u - cu, v - cv
    if angle_deg:
        t = np.deg2rad(angle_deg)
        du, dv = du * np.cos(t) + dv * np.sin(t), -du * np.sin(t) + dv * np.cos(t)
    r = np.sqrt((du / a) ** 2 + (dv / b) ** 2)
    return (1.0 - r) * min(a, b)


def soft_ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, a: float, b: float,
                 edge: float, angle_deg: float = 0.0) -> np.ndarray:
    """Soft elliptical mask in [0, 1], computed only inside the ellipse's bounding box."""
    size = u.shape[0]
    reach = max(a, b) + edge * (1.0 + max(a, b) / max(min(a, b), 1e-6))
    rows = slice(max(0, int((cv - reach) * size) - 1), min(size, int((cv + reach) * size) + 2))
    cols = slice(max(0, int((cu - reach) * size) - 1), min(size, int((cu + reach) * size) + 2))
    out = np.zeros(u.shape, np.float32)
    if rows.start < rows.stop and cols.start < cols.stop:
        out[rows, cols] = smooth(ellipse_sd(u[rows, cols], v[rows, cols], cu, cv, a, b,
                                            angle_deg), edge)
    return out


def blur(img: np.ndarray, sigma_norm: float) -> np.ndarray:
    """Gaussian blur with sigma given as a fraction of the image size."""
    sigma = sigma_norm * img.shape[0]
    if sigma < 0.3:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)


def bezier(points: list[tuple[float, float]] | np.ndarray, n: int = 32) -> np.ndarray:
    """Sample a Bezier curve of any degree through de Casteljau; returns ``n x 2``."""
    p = np.asarray(points, dtype=np.float64)
    t = np.linspace(0.0, 1.0, n)[:, None, None]
    pts = np.broadcast_to(p, (n, *p.shape)).copy()
    while pts.shape[1] > 1:
        pts = (1 - t) * pts[:, :-1] + t * pts[:, 1:]
    return pts[:, 0]


class Canvas:
    """An 8-bit drawing surface for anti-aliased curves, read back as float in [0, 1].

    Overlapping strokes take the maximum, which suits bones and vessels drawn as
    separate structures.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.img = np.zeros((size, size), np.uint8)

    def _px(self, pts: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(pts, np.float64) * self.size * _SCALE).astype(np.int32)

    def polyline(self, pts: np.ndarray, width: float, value: float = 1.0) -> None:
        """Stroke a polyline; ``width`` is a fraction of the image size."""
        thick = max(1, int(round(width * self.size)))
        color = int(np.clip(value, 0, 1) * 255)
        cv2.polylines(self.img, [self._px(pts).reshape(-1, 1, 2)], False, color, thick,
                      cv2.LINE_AA, _SHIFT)

    def polygon(self, pts: np.ndarray, value: float = 1.0) -> None:
        """Fill a polygon."""
        color = int(np.clip(value, 0, 1) * 255)
        cv2.fillPoly(self.img, [self._px(pts).reshape(-1, 1, 2)], color, cv2.LINE_AA, _SHIFT)

    def ellipse(self, cu: float, cv: float, a: float, b: float, angle: float = 0.0,
                value: float = 1.0) -> None:
        """Fill an ellipse (centre and semi-axes as fractions of the size)."""
        color = int(np.clip(value, 0, 1) * 255)
        s = self.size * _SCALE
        cv2.ellipse(self.img, (int(cu * s), int(cv * s)),
                    (max(1, int(a * s)), max(1, int(b * s))), angle, 0, 360, color, -1,
                    cv2.LINE_AA, _SHIFT)

    def text(self, text: str, u: float, v: float, height: float, value: float = 1.0) -> None:
        """Burn a short text (e.g. a side marker); ``height`` as a fraction of the size."""
        scale = height * self.size / 22.0
        thick = max(1, int(round(scale * 2)))
        cv2.putText(self.img, text, (int(u * self.size), int(v * self.size)),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, int(value * 255), thick, cv2.LINE_AA)

    def read(self) -> np.ndarray:
        """The canvas as float32 in [0, 1]."""
        return self.img.astype(np.float32) * (1.0 / 255.0)
