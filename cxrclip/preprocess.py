"""The one function that turns pixels into model input, and the way back for heatmaps.

Steps of :func:`preprocess_image` (used by the training eval path and by inference):

1. :func:`to_uint8`: RGB(A) -> grey by ITU-R 601 luminance; uint8 stays as is, any
   other dtype is min-max scaled to 0..255 and rounded.
2. Resize so the shorter side is ``config.resize_shorter`` with PIL's antialiased
   ``config.interpolation`` (bicubic by default). The long side is rounded as
   ``config.resize_rounding`` says (half up by default). With ``resize_dtype``
   ``"float32"`` (default) the resize runs in float32 and is clipped to 0..255;
   with ``"uint8"`` it runs on the 8-bit image and gives 8-bit values, as PIL
   does on an 8-bit image in the official CXR-CLIP code.
3. Centre crop ``config.image_size`` square; the offset ``(resized - size) / 2`` is
   rounded down by default (odd margins: the extra pixel goes to the bottom/right)
   or half to even (``crop_offset="round_half_even"``, torchvision's ``CenterCrop``).
4. Repeat to 3 channels and normalise: ``(x / 255 - mean) / std`` per channel.

With :data:`cxrclip.config.OFFICIAL_RESIZE` these steps give exactly the pixels of
the official evaluation transform (``Image.convert("RGB")``, torchvision
``Resize(224)``, ``CenterCrop(224)``, ``ToTensor``, ``Normalize``) on an 8-bit image.

:func:`crop_geometry` and :func:`map_to_image` invert steps 2-3 for maps computed in
model space (e.g. a 7 x 7 similarity grid over the crop).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image

from cxrclip.config import PreprocessConfig

if TYPE_CHECKING:
    import torch

__all__ = ["CropGeometry", "crop_geometry", "map_to_image", "preprocess_array", "preprocess_batch",
           "preprocess_image", "to_uint8"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def _to_gray(pixels: np.ndarray) -> np.ndarray:
    """2-D array from 2-D, HxWx1, HxWx3 or HxWx4 input (alpha dropped, luminance for colour)."""
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return pixels[:, :, :3].astype(np.float64) @ _LUMA
    raise ValueError(f"expected a 2-D grey image or H x W x 3 RGB, got shape {pixels.shape}")


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """2-D uint8 grey image from any grey or RGB array.

    uint8 input passes through unchanged (RGB is converted by luminance and
    rounded). Other dtypes are min-max scaled to 0..255 over their finite
    values; a constant image becomes all zeros; NaN/inf become 0.
    """
    pixels = np.asarray(pixels)
    if pixels.size == 0:
        raise ValueError(f"cannot preprocess an empty image, got shape {pixels.shape}")
    gray = _to_gray(pixels)
    if pixels.dtype == np.uint8:
        return gray if gray.dtype == np.uint8 else np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    if np.issubdtype(gray.dtype, np.integer) or gray.dtype == np.bool_:
        return _scale_integers(gray)
    values = gray.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    lo, hi = values[finite].min(), values[finite].max()
    scaled = np.zeros_like(values) if hi <= lo else (values - lo) * (255.0 / (hi - lo))
    scaled[~finite] = 0.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _scale_integers(gray: np.ndarray) -> np.ndarray:
    """Min-max scale an integer image to uint8 through a lookup table (fast for uint16)."""
    lo, hi = int(gray.min()), int(gray.max())
    if hi <= lo:
        return np.zeros(gray.shape, dtype=np.uint8)
    if hi - lo > 1 << 20:  # very wide range: a table would be too large
        scaled = (gray.astype(np.float64) - lo) * (255.0 / (hi - lo))
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    lut = np.rint(np.arange(hi - lo + 1, dtype=np.float64) * (255.0 / (hi - lo))).astype(np.uint8)
    if lo >= 0 and gray.dtype != np.bool_:  # index with the pixels themselves, no copy
        return np.concatenate([np.zeros(lo, dtype=np.uint8), lut])[gray]
    return lut[gray.astype(np.int64) - lo]


@dataclass(frozen=True)
class CropGeometry:
    """Where the model's input crop sits in the original image.

    The image (``height`` x ``width``) is resized to ``resized_height`` x
    ``resized_width``, then the ``size`` x ``size`` crop starts at (``top``,
    ``left``) in resized pixels.
    """

    height: int
    width: int
    resized_height: int
    resized_width: int
    top: int
    left: int
    size: int

    @property
    def scale_y(self) -> float:
        """Resized pixels per original pixel, vertically."""
        return self.resized_height / self.height

    @property
    def scale_x(self) -> float:
        """Resized pixels per original pixel, horizontally."""
        return self.resized_width / self.width

    def crop_box(self) -> tuple[float, float, float, float]:
        """The crop in original pixel coordinates: (y0, x0, y1, x1), edges not centres."""
        return (self.top / self.scale_y, self.left / self.scale_x,
                (self.top + self.size) / self.scale_y, (self.left + self.size) / self.scale_x)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _long_side(long: int, short: int, target: int, rounding: str) -> int:
    """Resized long side; ``target * long / short`` evaluated as torchvision does, then rounded."""
    exact = target * long / short
    return max(target, int(exact) if rounding == "floor" else _round_half_up(exact))


def _crop_start(resized: int, size: int, rule: str) -> int:
    if rule == "round_half_even":
        return int(round((resized - size) / 2.0))  # Python's round: half to even, as torchvision
    return (resized - size) // 2


def crop_geometry(height: int, width: int, config: PreprocessConfig) -> CropGeometry:
    """Resize and crop geometry that :func:`preprocess_image` applies to an H x W image."""
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height} x {width}")
    short = config.resize_shorter
    if height <= width:
        new_h, new_w = short, _long_side(width, height, short, config.resize_rounding)
    else:
        new_h, new_w = _long_side(height, width, short, config.resize_rounding), short
    size = config.image_size
    return CropGeometry(height, width, new_h, new_w, _crop_start(new_h, size, config.crop_offset),
                        _crop_start(new_w, size, config.crop_offset), size)


_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def _resize(gray: np.ndarray, height: int, width: int, config: PreprocessConfig) -> np.ndarray:
    """Antialiased PIL resize of a 2-D uint8 image to float32 values in 0..255.

    ``resize_dtype="uint8"`` resizes the 8-bit image (PIL's fixed-point 8-bit result);
    ``"float32"`` resizes a float copy and clips overshoot to 0..255.
    """
    if gray.shape == (height, width):
        return gray.astype(np.float32)
    resample = _RESAMPLE[config.interpolation]
    if config.resize_dtype == "uint8":
        resized = Image.fromarray(gray).resize((width, height), resample=resample)  # mode "L"
        return np.asarray(resized, dtype=np.float32)
    image = Image.fromarray(gray.astype(np.float32))  # float32 -> mode "F"
    resized = image.resize((width, height), resample=resample)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)


def _crop(pixels: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Steps 1-3: the resized, centre-cropped grey image (S x S float32, values 0..255)."""
    gray = to_uint8(pixels)
    geo = crop_geometry(*gray.shape, config)
    resized = _resize(gray, geo.resized_height, geo.resized_width, config)
    return resized[geo.top:geo.top + geo.size, geo.left:geo.left + geo.size]


def preprocess_array(pixels: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """:func:`preprocess_image` in numpy only (no torch import): 3 x S x S float32, same values."""
    x = _crop(pixels, config) / np.float32(255.0)
    mean = np.asarray(config.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(config.std, dtype=np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray((x[None] - mean) / std, dtype=np.float32)


def preprocess_image(pixels: np.ndarray, config: PreprocessConfig) -> torch.Tensor:
    """Model input (3 x S x S float32) from a grey or RGB image; see the module docstring."""
    import torch

    crop = _crop(pixels, config)
    x = torch.from_numpy(np.ascontiguousarray(crop)).div_(255.0).expand(3, -1, -1)
    mean = torch.tensor(config.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32).view(3, 1, 1)
    return ((x - mean) / std).contiguous()


def preprocess_batch(images: Sequence[np.ndarray], config: PreprocessConfig) -> torch.Tensor:
    """Stack :func:`preprocess_image` of each image into B x 3 x S x S."""
    import torch

    if len(images) == 0:
        raise ValueError("preprocess_batch needs at least one image, got an empty sequence")
    return torch.stack([preprocess_image(image, config) for image in images])


def _axis_weights(n_out: int, scale: float, offset: int, size: int, cells: int,
                  interpolation: str) -> tuple[np.ndarray, np.ndarray]:
    """Interpolation weights (n_out x cells) from grid cells to original pixels along one axis.

    Returns the weights and a mask of pixels whose centre falls inside the crop.
    """
    centre = (np.arange(n_out) + 0.5) * scale - offset  # pixel centre in crop pixels
    inside = (centre >= 0) & (centre < size)
    pos = centre * cells / size - 0.5  # in grid-cell-centre units
    weights = np.zeros((n_out, cells), dtype=np.float64)
    rows = np.arange(n_out)
    if interpolation == "nearest":
        weights[rows, np.clip(np.floor(pos + 0.5), 0, cells - 1).astype(int)] = 1.0
        return weights, inside
    pos = np.clip(pos, 0, cells - 1)
    low = np.floor(pos).astype(int)
    high = np.minimum(low + 1, cells - 1)
    frac = pos - low
    np.add.at(weights, (rows, low), 1.0 - frac)
    np.add.at(weights, (rows, high), frac)
    return weights, inside


def map_to_image(grid: np.ndarray, height: int, width: int, config: PreprocessConfig,
                 interpolation: Literal["bilinear", "nearest"] = "bilinear",
                 outside: Literal["nan", "edge"] = "nan") -> np.ndarray:
    """Resample a model-space map (gh x gw over the input crop) to the original H x W image.

    Cell (i, j) covers the crop's i-th row band and j-th column band. ``bilinear``
    interpolates between cell centres, ``nearest`` gives flat cells. Pixels outside
    the crop are NaN (``outside="nan"``) or take the nearest edge value (``"edge"``).
    Returns float32.
    """
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 2 or min(grid.shape) < 1:
        raise ValueError(f"grid must be a non-empty 2-D array, got shape {grid.shape}")
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    if outside not in ("nan", "edge"):
        raise ValueError(f"outside must be 'nan' or 'edge', got {outside!r}")
    geo = crop_geometry(height, width, config)
    wy, in_y = _axis_weights(height, geo.scale_y, geo.top, geo.size, grid.shape[0], interpolation)
    wx, in_x = _axis_weights(width, geo.scale_x, geo.left, geo.size, grid.shape[1], interpolation)
    out = (wy @ grid @ wx.T).astype(np.float32)
    if outside == "nan":
        out[~in_y, :] = np.nan
        out[:, ~in_x] = np.nan
    return out
