"""How long one image pixel is: the calibration behind every measurement (no Qt).

Order of evidence (DICOM PS3.3 C.8.11.7 / 10.7.1.3):

1. Pixel Spacing (0028,0030): spacing in the patient plane; unit "mm".
2. Imager Pixel Spacing (0018,1164): spacing at the detector, which
   magnifies the patient; divided by Estimated Radiographic Magnification
   Factor (0018,1114) when the file has one ("mm (detector, corrected ×1.10)"),
   otherwise used as is and said so ("mm (detector, uncorrected)").
3. Neither, or only zero/invalid values such as ``0\\0``: lengths in "px".

`viewer.io.scan` fills ``View.pixel_spacing`` and ``View.pixel_spacing_source``
from (1) or (2); the magnification factor is read here, lazily, from the
file's header the first time a view is measured.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from viewer.model.study import View

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    """Spacing of rows and columns in mm, or None for an uncalibrated image ("px")."""

    row_mm: float | None = None
    col_mm: float | None = None
    source: str = ""  # human words: "Pixel Spacing", "detector, corrected ×1.10", ...

    @property
    def calibrated(self) -> bool:
        return self.row_mm is not None and self.col_mm is not None

    @property
    def unit(self) -> str:
        """"mm" or "px"."""
        return "mm" if self.calibrated else "px"

    @property
    def label(self) -> str:
        """The unit as shown next to a value, e.g. ``"mm (detector, corrected ×1.10)"``."""
        if not self.calibrated:
            return "px"
        return "mm" if self.source in ("", "Pixel Spacing") else f"mm ({self.source})"

    @property
    def area_unit(self) -> str:
        """"mm²" or "px²", with the calibration source like `label`."""
        if not self.calibrated:
            return "px²"
        return "mm²" if self.source in ("", "Pixel Spacing") else f"mm² ({self.source})"

    def length(self, dx: float, dy: float) -> float:
        """Length of an image-pixel displacement ``(dx, dy)`` = (columns, rows)."""
        if not self.calibrated:
            return math.hypot(dx, dy)
        return math.hypot(dx * self.col_mm, dy * self.row_mm)

    def area(self, pixel_area: float) -> float:
        """An area in square image pixels, in mm² (or px²)."""
        return pixel_area * (self.row_mm * self.col_mm if self.calibrated else 1.0)


UNCALIBRATED = Calibration()


def _positive(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number > 0 else None


@lru_cache(maxsize=512)
def read_magnification(path: str) -> float | None:
    """Estimated Radiographic Magnification Factor of the file at ``path``, or None
    (absent, zero, unreadable). Only that one header element is parsed."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                             specific_tags=["EstimatedRadiographicMagnificationFactor"])
        return _positive(ds.get("EstimatedRadiographicMagnificationFactor"))
    except (OSError, ValueError, TypeError, AttributeError, EOFError) as exc:
        log.debug("magnification factor of %s unreadable: %s", path, exc)
        return None


def calibration_for(view: View, magnification: float | None | object = ...) -> Calibration:
    """The calibration of ``view``.

    ``magnification`` overrides the factor read from the file (tests, PNG
    input); by default it is read from the DICOM header when the spacing is
    the detector's (Imager Pixel Spacing).
    """
    spacing = view.pixel_spacing
    if spacing is None or len(spacing) != 2:
        return UNCALIBRATED
    row, col = (_positive(v) for v in spacing)
    if row is None or col is None:
        return UNCALIBRATED
    if view.pixel_spacing_source != "ImagerPixelSpacing":
        return Calibration(row, col, "Pixel Spacing")
    if magnification is ...:
        magnification = read_magnification(str(Path(view.path))) if view.source == "dicom" else None
    factor = _positive(magnification)
    if factor is None:
        return Calibration(row, col, "detector, uncorrected")
    return Calibration(row / factor, col / factor, f"detector, corrected ×{factor:.2f}")
