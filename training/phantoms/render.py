"""From attenuation to a processed, display-ready radiograph in [0, 1].

Mimics what a detector and its processing produce: a logarithmic-like tone curve,
unsharp-mask edge enhancement (which makes ribs and vessels crisp), quantum noise,
slight patient rotation, and per-study exposure differences.
"""
from __future__ import annotations

import cv2
import numpy as np

from training.phantoms.anatomy import Anatomy
from training.phantoms.draw import blur


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the centre, replicating the border (patient rotation/tilt)."""
    if abs(degrees) < 1e-3:
        return img
    n = img.shape[0]
    m = cv2.getRotationMatrix2D((n / 2, n / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (n, n), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def to_display(att: np.ndarray, anat: Anatomy, rng: np.random.Generator,
               lateral: bool = False) -> np.ndarray:
    """Processed image in [0, 1] (1 = white = most attenuating)."""
    lo, hi = (0.35, 1.9) if lateral else (0.1, 2.0)
    d = np.clip((att - lo) / (hi - lo), 0, None)
    d = 1.25 * (1.0 - np.exp(-1.6 * d)) / (1.0 - np.exp(-1.6 * 1.25))
    d = rotate(d.astype(np.float32), anat.rotation_deg * (0.5 if lateral else 1.0))
    d = d + anat.edge_enhance * (d - blur(d, 0.012))
    noise = rng.standard_normal(d.shape).astype(np.float32)
    noise = blur(noise, 0.0008) * anat.noise * 1.6
    d = d + noise
    d = np.clip(d, 0, 1) ** anat.gamma
    d = 0.5 + (d - 0.5) * anat.contrast
    return np.clip(d, 0, 1).astype(np.float32)
