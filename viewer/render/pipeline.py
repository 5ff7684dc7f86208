"""Stub signatures; filled in next."""
from __future__ import annotations

import numpy as np

from viewer.io.decode import DecodedImage
from viewer.model.study import WindowPreset


def render_uint8(image: DecodedImage, window: WindowPreset | tuple[float, float] | None = None,
                 invert: bool = False, function: str | None = None,
                 max_side: int | None = None) -> np.ndarray:
    raise NotImplementedError


def default_display_uint8(image: DecodedImage) -> np.ndarray:
    raise NotImplementedError


def downsample_for_display(arr: np.ndarray, max_side: int) -> np.ndarray:
    raise NotImplementedError


def pixel_value_at(image: DecodedImage, row: int, col: int) -> tuple[float, float]:
    raise NotImplementedError


def data_range(image: DecodedImage) -> tuple[float, float]:
    raise NotImplementedError


def display_range(image: DecodedImage) -> tuple[float, float]:
    raise NotImplementedError


def voi_lut_table(values: np.ndarray, center: float, width: float,
                  function: str = "LINEAR") -> np.ndarray:
    raise NotImplementedError
