"""Training-time image augmentation on uint8 radiographs.

Random resized crop with scale 0.8-1.1 (above 1 the crop window is larger than
the image, i.e. a zoom-out with black padding), CLAHE, and a small
brightness/contrast jitter. The output is an ``S x S`` uint8 image; the caller
then applies the same normalisation as evaluation (``cxrclip.preprocess``).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from training.config import AugmentConfig


def random_resized_crop(pixels: np.ndarray, size: int, rng: np.random.Generator,
                        scale: tuple[float, float], ratio: tuple[float, float]) -> np.ndarray:
    """Crop a window of ``scale`` x image area and aspect ``ratio``, resized to ``size``.

    Windows larger than the image (scale > 1 or extreme ratios) are filled with 0.
    """
    h, w = pixels.shape[:2]
    area = h * w * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    cw = max(1, round(math.sqrt(area * aspect)))
    ch = max(1, round(math.sqrt(area / aspect)))
    x0 = int(rng.integers(min(0, w - cw), max(0, w - cw) + 1))
    y0 = int(rng.integers(min(0, h - ch), max(0, h - ch) + 1))
    # Affine map from the crop window to the output square; outside the image → 0.
    sx, sy = size / cw, size / ch
    matrix = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], dtype=np.float64)
    interp = cv2.INTER_AREA if sx < 1 and sy < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(pixels, matrix, (size, size), flags=interp,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def apply_clahe(pixels: np.ndarray, clip_limit: float, tile: int) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (OpenCV)."""
    return cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile, tile)).apply(pixels)


def jitter(pixels: np.ndarray, rng: np.random.Generator, brightness: float,
           contrast: float) -> np.ndarray:
    """Scale contrast about the mean by 1±contrast and shift by ±brightness*255."""
    c = rng.uniform(1 - contrast, 1 + contrast)
    b = rng.uniform(-brightness, brightness) * 255.0
    x = pixels.astype(np.float32)
    out = (x - x.mean()) * c + x.mean() + b
    return np.clip(out, 0, 255).astype(np.uint8)


class TrainAugment:
    """Callable ``(uint8 HxW, rng) -> uint8 SxS`` built from an ``AugmentConfig``."""

    def __init__(self, config: AugmentConfig, size: int) -> None:
        self.config = config
        self.size = int(size)

    def __call__(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if pixels.dtype != np.uint8 or pixels.ndim != 2:
            raise ValueError(f"TrainAugment expects a 2-D uint8 image, got {pixels.dtype} "
                             f"{pixels.shape}; convert with cxrclip.preprocess.to_uint8 first")
        cfg = self.config
        out = random_resized_crop(pixels, self.size, rng, (cfg.crop_scale_min, cfg.crop_scale_max),
                                  (cfg.crop_ratio_min, cfg.crop_ratio_max))
        if cfg.clahe and rng.random() < cfg.clahe_probability:
            out = apply_clahe(out, cfg.clahe_clip_limit, cfg.clahe_tile)
        if cfg.brightness > 0 or cfg.contrast > 0:
            out = jitter(out, rng, cfg.brightness, cfg.contrast)
        return out
