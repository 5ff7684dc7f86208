"""Colour pixels: RGB of any bit depth and PALETTE COLOR to RGB uint8, and the one grey conversion.

The viewer shows colour images in colour; models get grey. ``luminance``
(ITU-R BT.601 luma) is the only place colour becomes grey, so the display's
grey fallback, the status-bar value and the model input agree.
"""
from __future__ import annotations

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an HxWx3 RGB uint8 image, as HxW uint8 (what models get)."""
    return np.clip(np.rint(rgb.astype(np.float32) @ _LUMA), 0, 255).astype(np.uint8)


def is_gray(rgb: np.ndarray) -> bool:
    """True when the three channels are equal everywhere."""
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1])
                and np.array_equal(rgb[..., 1], rgb[..., 2]))


def rgb_to_uint8(arr: np.ndarray, bits_stored: int) -> np.ndarray:
    """HxWx3/4 colour samples of any dtype to HxWx3 uint8, scaled by ``bits_stored``.

    Integer samples keep their top 8 significant bits (a 32-bit sample
    0x80808080 becomes 128, not 255 as clipping would give); floats are
    taken as 0..1 when their maximum is at most 1, else clipped to 0..255.
    """
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind == "f":
        finite = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        return np.clip(np.rint(finite * scale), 0, 255).astype(np.uint8)
    bits = int(bits_stored or 0)
    if not 8 < bits <= arr.dtype.itemsize * 8:
        bits = arr.dtype.itemsize * 8 if int(arr.max(initial=0)) > 255 else 8
    values = np.clip(arr.astype(np.int64) if arr.dtype != np.uint64 else arr, 0, None)
    shifted = values >> np.uint64(bits - 8) if values.dtype == np.uint64 else values >> (bits - 8)
    return np.clip(shifted, 0, 255).astype(np.uint8)


def palette_to_rgb(indices: np.ndarray, ds) -> np.ndarray:
    """PALETTE COLOR indices to HxWx3 uint8 through the file's colour LUTs.

    pydicom returns the LUT entries as stored. 16-bit entries span 0..65535
    and keep their high byte; but some files (e.g. big-endian ones) carry
    8-bit values in 16-bit entries, which pydicom already returns as
    0..255: those are used as they are, not shifted a second time.
    """
    import pydicom.pixels

    rgb = np.asarray(pydicom.pixels.apply_color_lut(indices, ds))
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb[..., :3])
    if int(rgb.max(initial=0)) > 255:
        return (rgb[..., :3].astype(np.uint16) >> 8).astype(np.uint8)
    return rgb[..., :3].astype(np.uint8)
