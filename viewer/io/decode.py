"""Decode the pixels of one View (first frame) into stored and modality values."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer.model.study import View, WindowPreset


class DecodeError(RuntimeError):
    """Pixels of a file could not be decoded; the message says why and what to install."""


@dataclass(frozen=True)
class VoiLut:
    """A VOI LUT Sequence item: first mapped input value, output bits, table."""

    first_mapped: int
    bits: int
    table: np.ndarray
    explanation: str = ""


@dataclass
class LutInfo:
    """Everything after the stored pixels that render needs."""

    photometric: str = "MONOCHROME2"
    windows: list[WindowPreset] = field(default_factory=list)
    voi_function: str = "LINEAR"
    voi_luts: list[VoiLut] = field(default_factory=list)
    presentation_shape: str = "IDENTITY"  # IDENTITY | INVERSE
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    modality_lut: VoiLut | None = None  # Modality LUT Sequence, if any

    @property
    def inverted(self) -> bool:
        """True when low values are shown bright (MONOCHROME1 or INVERSE shape)."""
        return self.photometric == "MONOCHROME1" or self.presentation_shape == "INVERSE"


@dataclass
class DecodedImage:
    stored: np.ndarray  # HxW as stored (first frame; gray for colour input)
    modality: np.ndarray  # HxW float32 after the Modality LUT
    lut: LutInfo
    rgb: np.ndarray | None = None  # HxWx3 uint8 for colour inputs
    view: View | None = None
    decoder: str = ""


def load_image(view: View) -> DecodedImage:
    """Decode the first frame of ``view`` (stub, filled in next)."""
    raise NotImplementedError
