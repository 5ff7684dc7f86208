"""Pixels for one image view: the decoded image, a display-size copy, and renderings.

`ViewPixels` is prepared in a worker (decode, downsample, first render) and
handed to the `ImageView` on the UI thread. Later window/level changes render
the display-size copy on the UI thread (a few ms); a full-resolution rendering
is only made when the user zooms in past the copy's resolution.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PySide6.QtGui import QImage

from viewer.io.decode import DecodedImage, load_image
from viewer.model.study import View, WindowPreset
from viewer.render import data_range, downsample_for_display, render_display

log = logging.getLogger(__name__)

# Longest side of the display copy (area-averaged by an integer factor, so a
# 3000-row image gives 1000 rows): enough for a fitted view on a 1080p-class
# screen; when the view needs more, a full-resolution render is made in a worker.
DISPLAY_MAX_SIDE = 1024

WindowKey = tuple[float | None, float | None, str | None, bool]


def window_key(window: WindowPreset | None, function: str | None, invert: bool) -> WindowKey:
    """Hashable identity of one rendering's VOI settings."""
    if window is None:
        return (None, None, function, invert)
    return (float(window.center), float(window.width), function, invert)


def render_shown(image: DecodedImage, key: WindowKey, max_side: int | None = None) -> np.ndarray:
    """What the image view (and the PNG export) shows for ``key``: grey HxW, or colour HxWx3.

    ``max_side`` renders from the cached display-size copy (area-averaged).
    """
    center, width, function, invert = key
    window = None if center is None or width is None else WindowPreset(center, width)
    return render_display(image, window, invert, function, max_side=max_side)


def to_qimage(arr: np.ndarray) -> QImage:
    """Wrap a uint8 HxW (gray) or HxWx3/4 array as a QImage that owns a copy of the data."""
    arr = np.ascontiguousarray(arr)
    if arr.ndim == 2:
        fmt, h, w = QImage.Format.Format_Grayscale8, arr.shape[0], arr.shape[1]
    elif arr.ndim == 3 and arr.shape[2] == 3:
        fmt, h, w = QImage.Format.Format_RGB888, arr.shape[0], arr.shape[1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        fmt, h, w = QImage.Format.Format_RGBA8888, arr.shape[0], arr.shape[1]
    else:
        raise ValueError(f"cannot show an array of shape {arr.shape} as an image; "
                         "expected HxW, HxWx3 or HxWx4 uint8")
    if arr.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {arr.dtype}")
    return QImage(arr.data, w, h, arr.strides[0], fmt).copy()


THUMB_SIZE = 72  # side of the study browser's thumbnails, in pixels
_GRAY_TO_RGB32 = (np.arange(256, dtype=np.uint32) * 0x010101) | 0xFF000000


def to_rgb32(arr: np.ndarray) -> np.ndarray:
    """Gray HxW or colour HxWx3 uint8 -> HxW uint32 0xFFRRGGBB (Qt's Format_RGB32).

    One table lookup: several times faster than Qt's own Grayscale8 -> pixmap
    conversion, and an RGB32 pixmap draws fastest on the raster engine.
    """
    if arr.ndim == 3:
        out = np.full(arr.shape[:2], 0xFF000000, dtype=np.uint32)
        out |= arr[..., 0].astype(np.uint32) << 16
        out |= arr[..., 1].astype(np.uint32) << 8
        out |= arr[..., 2]
        return out
    return np.take(_GRAY_TO_RGB32, arr)


def thumbnail(uint8: np.ndarray, side: int = THUMB_SIZE) -> np.ndarray:
    """A small copy of a rendering for the study browser."""
    return np.ascontiguousarray(downsample_for_display(uint8, side).astype(np.uint8))


@dataclass
class ViewPixels:
    """Decoded image plus the first display-size rendering (also as RGB32, ready for a
    pixmap) and the study browser's thumbnail, all built in a worker: on the UI thread,
    every numpy step waits for the GIL while background threads hold it."""

    view: View
    image: DecodedImage
    small_key: WindowKey
    small_uint8: np.ndarray
    data_range: tuple[float, float]
    thumb_uint8: np.ndarray
    small_rgb32: np.ndarray | None  # 4 bytes a pixel: the view drops it once its pixmap is made

    @property
    def full_size(self) -> tuple[int, int]:
        """(width, height) of the full-resolution image."""
        rows, cols = self.image.shape
        return cols, rows

    @property
    def is_downsampled(self) -> bool:
        """True when the display copy is smaller than the image."""
        return self.small_uint8.shape[:2] != self.image.shape

    def render_small(self, key: WindowKey) -> np.ndarray:
        """Display-size rendering for ``key`` (a few ms: one table lookup); colour stays colour."""
        return render_shown(self.image, key, DISPLAY_MAX_SIDE)


def prepare_view(view: View, image: DecodedImage | None = None,
                 key: WindowKey = (None, None, None, False)) -> ViewPixels:
    """Decode (unless given) and render the display copy: the worker part of opening."""
    image = image if image is not None else load_image(view)
    for note in image.notes:  # header values decode ignored (e.g. an infinite window width)
        log.info("%s: %s", view.view_id, note)
    small = render_shown(image, key, DISPLAY_MAX_SIDE)
    return ViewPixels(view, image, key, small, data_range(image), thumbnail(small), to_rgb32(small))
