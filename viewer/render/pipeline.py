"""Stored pixels -> uint8 display through one precomputed lookup table.

Order (DICOM PS3.3 C.11 / PS3.4 grayscale pipeline):
1. Modality LUT (Rescale Slope/Intercept or Modality LUT Sequence), tabulated
   per stored value by ``viewer.io.values``;
2. VOI: a window (LINEAR, LINEAR_EXACT or SIGMOID per C.11.2.1.2/3) or, when
   no window is chosen and the file has none, the file's VOI LUT Sequence;
   with neither, the full data range as a LINEAR window;
3. Presentation: MONOCHROME1 or Presentation LUT Shape INVERSE turn the
   output so that air/lungs are dark; the user's ``invert`` toggles on top.
The three steps are composed into one uint8 table per (window, function,
invert) and applied with ``np.take`` on the stored values.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np

from viewer.io.decode import DecodedImage
from viewer.io.values import take_chunked
from viewer.model.display import relative_presets, validate_window
from viewer.model.study import WindowPreset

_LUT_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()
_VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def voi_lut_table(values: np.ndarray, center: float, width: float,
                  function: str = "LINEAR") -> np.ndarray:
    """VOI output in [0, 1] (float64) for ``values`` under a window.

    LINEAR (C.11.2.1.2.1): ``((x - (c - 0.5)) / (w - 1) + 0.5)`` clamped,
    requires ``w >= 1``; LINEAR_EXACT (C.11.2.1.3.2): ``(x - c) / w + 0.5``
    clamped; SIGMOID (C.11.2.1.3.1): ``1 / (1 + exp(-4 (x - c) / w))``.
    """
    center, width = validate_window(center, width)
    x = np.asarray(values, dtype=np.float64)
    function = (function or "LINEAR").upper()
    if function == "LINEAR":
        if width < 1:
            raise ValueError(f"LINEAR window width must be >= 1, got {width}; "
                             "use LINEAR_EXACT for narrower windows")
        y = (x - (center - 0.5)) / (width - 1) + 0.5 if width > 1 else \
            (x > center - 0.5).astype(np.float64)
    elif function == "LINEAR_EXACT":
        y = (x - center) / width + 0.5
    elif function == "SIGMOID":
        y = 1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - center) / width, -700, 700)))
    else:
        raise ValueError(f"VOI LUT Function must be one of {_VOI_FUNCTIONS}, got {function!r}")
    return np.clip(y, 0.0, 1.0)


def _to_uint8(unit: np.ndarray, inverted: bool) -> np.ndarray:
    if inverted:
        unit = 1.0 - unit
    return np.rint(unit * 255.0).astype(np.uint8)


def data_range(image: DecodedImage) -> tuple[float, float]:
    """(min, max) modality value present in the image (cached)."""
    if "range" not in image.cache:
        image.cache["range"] = image.values.modality_range()
    return image.cache["range"]


def display_range(image: DecodedImage) -> tuple[float, float]:
    """``data_range`` ordered (value shown darkest, value shown brightest).

    For MONOCHROME1/INVERSE images high values are dark, so the pair is
    reversed; relative presets ("lung = dark part of the range") use it.
    """
    lo, hi = data_range(image)
    return (hi, lo) if image.lut.inverted else (lo, hi)


def window_presets(image: DecodedImage) -> list[WindowPreset]:
    """File windows, then full range, lung, mediastinum and bone presets."""
    modality = image.view.modality if image.view is not None else ""
    return list(image.lut.windows) + relative_presets(display_range(image), modality)


def default_window(image: DecodedImage) -> WindowPreset | None:
    """The file's first window, or None when the VOI LUT / full range is used."""
    return image.lut.windows[0] if image.lut.windows else None


def _as_window(window) -> tuple[float, float] | None:
    if window is None:
        return None
    if isinstance(window, WindowPreset):
        return window.center, window.width
    center, width = window
    return float(center), float(width)


def _voi_unit(image: DecodedImage, window, function: str | None) -> np.ndarray:
    """VOI output in [0, 1] per table index."""
    table = image.values.table
    chosen = _as_window(window) or _as_window(default_window(image))
    if chosen is None and image.lut.voi_luts:
        voi = image.lut.voi_luts[0]
        return voi.apply(table) / float(voi.max_output)
    if chosen is None and image.rgb is not None:
        return np.clip(table.astype(np.float64) / 255.0, 0.0, 1.0)  # colour: as stored
    if chosen is None:
        lo, hi = data_range(image)
        return voi_lut_table(table, (lo + hi) / 2, max(hi - lo, 1.0), "LINEAR_EXACT")
    func = function or image.lut.voi_function
    if func == "LINEAR" and chosen[1] < 1:
        func = "LINEAR_EXACT"
    return voi_lut_table(table, chosen[0], chosen[1], func)


def display_lut(image: DecodedImage, window=None, invert: bool = False,
                function: str | None = None) -> np.ndarray:
    """uint8 table indexed like ``image.values`` (cached, last few settings)."""
    key = (_as_window(window), invert, function)
    with _CACHE_LOCK:  # the Qt layer renders from worker threads
        cache: OrderedDict = image.cache.setdefault("luts", OrderedDict())
        lut = cache.get(key)
        if lut is not None:
            cache.move_to_end(key)
            return lut
    lut = _to_uint8(_voi_unit(image, window, function), image.lut.inverted != bool(invert))
    with _CACHE_LOCK:
        cache[key] = lut
        while len(cache) > _LUT_CACHE_SIZE:
            cache.popitem(last=False)
    return lut


def render_uint8(image: DecodedImage, window: WindowPreset | tuple[float, float] | None = None,
                 invert: bool = False, function: str | None = None,
                 max_side: int | None = None) -> np.ndarray:
    """HxW uint8 display image.

    ``window`` None = file default (first window, else VOI LUT Sequence, else
    full range). ``invert`` flips on top of the presentation. ``max_side``
    renders from a cached area-averaged copy no larger than that (for
    zoomed-out views), which makes W/L changes proportionally cheaper.
    """
    stored = image.stored if max_side is None else display_pixels(image, max_side)
    lut = display_lut(image, window, invert, function)
    return apply_lut(lut, image.values.index(stored))


def render_display(image: DecodedImage, window: WindowPreset | tuple[float, float] | None = None,
                   invert: bool = False, function: str | None = None,
                   max_side: int | None = None) -> np.ndarray:
    """What the image view shows: HxW uint8 for grey, HxWx3 uint8 for colour images.

    Colour images keep their colours: the same VOI table (built over 0..255,
    identity when no window is chosen) maps each of R, G and B, so window,
    level and invert act on colour as on grey. Models never get this; they
    get ``default_display_uint8`` (grey).
    """
    if image.rgb is None:
        return render_uint8(image, window, invert, function, max_side)
    rgb = image.rgb if max_side is None else display_rgb(image, max_side)
    return apply_lut(display_lut(image, window, invert, function), rgb)


def display_rgb(image: DecodedImage, max_side: int) -> np.ndarray:
    """Cached ``downsample_for_display(image.rgb, max_side)``."""
    key = ("pyramid-rgb", int(max_side))
    if key not in image.cache:
        image.cache[key] = downsample_for_display(image.rgb, max_side)
    return image.cache[key]


def apply_lut(lut: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``lut[indices]`` in cache-sized chunks (see ``viewer.io.values.take_chunked``)."""
    return take_chunked(lut, indices)


def default_display_uint8(image: DecodedImage) -> np.ndarray:
    """The file's default display (air dark), full resolution: the input handed to models."""
    return render_uint8(image, None, False)


def display_pixels(image: DecodedImage, max_side: int) -> np.ndarray:
    """Cached ``downsample_for_display(image.stored, max_side)``."""
    key = ("pyramid", int(max_side))
    if key not in image.cache:
        image.cache[key] = downsample_for_display(image.stored, max_side)
    return image.cache[key]


def downsample_for_display(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Area-average ``arr`` by the smallest integer factor that fits ``max_side``.

    Integer input stays integer (rounded mean) so the LUT path still applies.
    Blocks at the right/bottom edge that are cut short average the pixels
    they have. Implemented as a sum of ``factor**2`` strided slices, which is
    several times faster than reshape-and-sum on large images.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    h, w = arr.shape[:2]
    factor = math.ceil(max(h, w) / max_side)
    if factor <= 1:
        return arr
    out_h, out_w = -(-h // factor), -(-w // factor)
    acc = np.zeros((out_h, out_w) + arr.shape[2:], dtype=_accumulator(arr.dtype, factor))
    for i in range(factor):
        for j in range(factor):
            part = arr[i::factor, j::factor]
            acc[:part.shape[0], :part.shape[1]] += part
    rows = np.minimum(factor, h - np.arange(out_h) * factor)
    cols = np.minimum(factor, w - np.arange(out_w) * factor)
    if acc.dtype.kind == "f":
        count = np.outer(rows, cols).reshape((out_h, out_w) + (1,) * (arr.ndim - 2))
        mean = acc / count
        if arr.dtype.kind == "f":
            return mean.astype(arr.dtype)
        info = np.iinfo(arr.dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(arr.dtype)
    if h % factor == 0 and w % factor == 0:
        n = factor * factor
        return ((acc + n // 2) // n).astype(arr.dtype)
    count = np.outer(rows, cols).astype(acc.dtype).reshape((out_h, out_w) + (1,) * (arr.ndim - 2))
    return ((acc + count // 2) // count).astype(arr.dtype)


def _accumulator(dtype: np.dtype, factor: int) -> type:
    """Sum type: exact for 8/16-bit, float64 for 64-bit integers (their sums overflow)."""
    if dtype.kind == "f" or dtype.itemsize >= 8:
        return np.float64
    if dtype.itemsize <= 2 and factor <= 256:
        return np.uint32 if dtype.kind == "u" else np.int32
    return np.int64


def pixel_value_at(image: DecodedImage, row: int, col: int) -> tuple[float, float]:
    """(stored, modality) value at ``(row, col)`` for the status bar."""
    h, w = image.shape
    if not (0 <= row < h and 0 <= col < w):
        raise IndexError(f"pixel ({row}, {col}) is outside the {h}x{w} image")
    stored = image.stored[row, col]
    modality = image.values.modality_of(np.asarray([stored]))[0]
    return (int(stored) if image.stored.dtype.kind in "iu" else float(stored)), float(modality)
