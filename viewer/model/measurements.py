"""Measurements on one view: geometry in image pixels and the maths (no Qt).

A `Measurement` is a kind plus control points in image pixel coordinates
``(x, y)`` = (column, row), (0, 0) at the top-left corner of the first pixel,
the same coordinates as `viewer.model.display.ViewTransform`. So a
measurement drawn once stays on the anatomy whatever the zoom, pan,
rotation or flips. `measure` turns one into numbers with a `Calibration`
(mm or px) and, for regions, the view's modality pixels.

Kinds and their points:

- ``ruler``: 2 points; length.
- ``angle``: 3 points, the vertex in the middle; degrees in [0, 180].
- ``rect`` / ``ellipse``: 2 opposite corners (of the bounding box); mean, SD,
  min, max of the modality values of the pixels whose centres lie inside,
  and the shape's area.
- ``ctr``: 4 points: the heart's right and left borders, then the thorax's
  (inner rib margins); cardiothoracic ratio = horizontal heart width /
  horizontal thorax width (widths along image rows, as read on a PA film).
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field, replace

import numpy as np

from viewer.model.calibration import Calibration

Point = tuple[float, float]

POINTS_NEEDED: dict[str, int] = {"ruler": 2, "angle": 3, "rect": 2, "ellipse": 2, "ctr": 4}
KIND_NAMES: dict[str, str] = {"ruler": "Ruler", "angle": "Angle", "rect": "Rectangle ROI",
                              "ellipse": "Ellipse ROI", "ctr": "Cardiothoracic ratio"}
ROI_KINDS = ("rect", "ellipse")


@dataclass(frozen=True)
class Measurement:
    """One measurement: ``kind`` (see `POINTS_NEEDED`), its view and its points."""

    kind: str
    view_id: str
    points: tuple[Point, ...]
    measurement_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        if self.kind not in POINTS_NEEDED:
            raise ValueError(f"unknown measurement kind {self.kind!r}; choose one of "
                             f"{sorted(POINTS_NEEDED)}")
        points = tuple((float(x), float(y)) for x, y in self.points)
        if len(points) != POINTS_NEEDED[self.kind]:
            raise ValueError(f"a {self.kind} needs {POINTS_NEEDED[self.kind]} points, "
                             f"got {len(points)}")
        if not all(math.isfinite(v) for p in points for v in p):
            raise ValueError(f"measurement points must be finite, got {points}")
        object.__setattr__(self, "points", points)

    @property
    def name(self) -> str:
        return KIND_NAMES[self.kind]

    def moved(self, dx: float, dy: float) -> Measurement:
        """The same measurement shifted by ``(dx, dy)`` image pixels."""
        return replace(self, points=tuple((x + dx, y + dy) for x, y in self.points))

    def with_point(self, index: int, point: Point) -> Measurement:
        """The same measurement with control point ``index`` at ``point``."""
        points = list(self.points)
        points[index] = (float(point[0]), float(point[1]))
        return replace(self, points=tuple(points))


@dataclass(frozen=True)
class RegionStats:
    """Modality values inside a region: ``count`` pixels, mean, SD (population), min, max."""

    count: int
    mean: float
    sd: float
    minimum: float
    maximum: float


@dataclass(frozen=True)
class MeasurementResult:
    """Numbers of one measurement and the one-line text shown beside it."""

    values: dict[str, float]
    unit: str
    text: str


# --- the maths ---------------------------------------------------------------------
def ruler_length(p0: Point, p1: Point, calibration: Calibration) -> float:
    """Distance between two image points in mm (or px when uncalibrated)."""
    return calibration.length(p1[0] - p0[0], p1[1] - p0[1])


def angle_degrees(a: Point, vertex: Point, b: Point, calibration: Calibration | None = None) -> float:
    """The angle a-vertex-b in degrees, in [0, 180]; uses physical axes when the
    row and column spacings differ. Raises ValueError when an arm has no length."""
    sx = calibration.col_mm if calibration and calibration.calibrated else 1.0
    sy = calibration.row_mm if calibration and calibration.calibrated else 1.0
    ux, uy = (a[0] - vertex[0]) * sx, (a[1] - vertex[1]) * sy
    vx, vy = (b[0] - vertex[0]) * sx, (b[1] - vertex[1]) * sy
    if math.hypot(ux, uy) == 0 or math.hypot(vx, vy) == 0:
        raise ValueError(f"an angle needs two arms of non-zero length, got {a}, {vertex}, {b}")
    return math.degrees(math.atan2(abs(ux * vy - uy * vx), ux * vx + uy * vy))


def box(p0: Point, p1: Point) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the box spanned by two corners."""
    return min(p0[0], p1[0]), min(p0[1], p1[1]), max(p0[0], p1[0]), max(p0[1], p1[1])


def region_mask(kind: str, p0: Point, p1: Point, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``rows x columns`` mask of the pixels whose centres lie in the region."""
    if kind not in ROI_KINDS:
        raise ValueError(f"region kind must be one of {ROI_KINDS}, got {kind!r}")
    rows, cols = shape
    left, top, right, bottom = box(p0, p1)
    ys = np.arange(rows, dtype=np.float64)[:, None] + 0.5
    xs = np.arange(cols, dtype=np.float64)[None, :] + 0.5
    if kind == "rect":
        return (xs >= left) & (xs <= right) & (ys >= top) & (ys <= bottom)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    rx, ry = (right - left) / 2, (bottom - top) / 2
    if rx <= 0 or ry <= 0:
        return np.zeros(shape, dtype=bool)
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0


def region_area_px(kind: str, p0: Point, p1: Point) -> float:
    """Geometric area of the rectangle or ellipse in square image pixels."""
    left, top, right, bottom = box(p0, p1)
    width, height = right - left, bottom - top
    return width * height if kind == "rect" else math.pi * width * height / 4


def region_stats(kind: str, p0: Point, p1: Point, pixels: np.ndarray) -> RegionStats:
    """Statistics of ``pixels`` (2-D modality values) inside the region.

    Raises ValueError when no pixel centre lies inside (a region smaller than a pixel).
    """
    values = np.asarray(pixels)
    if values.ndim == 3:  # colour: measure the mean of the channels
        values = values.mean(axis=2)
    if values.ndim != 2:
        raise ValueError(f"region statistics need a 2-D image, got shape {values.shape}")
    left, top, right, bottom = box(p0, p1)
    # only the bounding box's pixels are tested (a small ROI on a large image stays cheap)
    r0, c0 = max(0, math.ceil(top - 0.5)), max(0, math.ceil(left - 0.5))
    r1 = min(values.shape[0], math.floor(bottom - 0.5) + 1)
    c1 = min(values.shape[1], math.floor(right - 0.5) + 1)
    crop = values[r0:max(r1, r0), c0:max(c1, c0)]
    shifted = ((p0[0] - c0, p0[1] - r0), (p1[0] - c0, p1[1] - r0))
    inside = crop[region_mask(kind, *shifted, crop.shape)].astype(np.float64)
    if inside.size == 0:
        raise ValueError("the region holds no pixel centre; draw it larger")
    return RegionStats(int(inside.size), float(inside.mean()), float(inside.std()),
                       float(inside.min()), float(inside.max()))


def cardiothoracic_ratio(points: tuple[Point, ...], calibration: Calibration) -> tuple[float, float, float]:
    """(heart width, thorax width, ratio) from the four CTR points; widths horizontal.

    Raises ValueError when the thorax width is zero.
    """
    scale = calibration.col_mm if calibration.calibrated else 1.0
    heart = abs(points[1][0] - points[0][0]) * scale
    thorax = abs(points[3][0] - points[2][0]) * scale
    if thorax == 0:
        raise ValueError("the thorax width is zero; mark both inner rib margins")
    return heart, thorax, heart / thorax


def _fmt(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"


def measure(m: Measurement, calibration: Calibration, pixels: np.ndarray | None = None,
            value_unit: str = "") -> MeasurementResult:
    """The numbers and the label of ``m``. ``pixels`` (modality values) are needed for
    regions; without them a region reports only its area. Degenerate shapes
    (an angle arm of zero length) give a result whose text says what is wrong."""
    unit = calibration.label
    if m.kind == "ruler":
        length = ruler_length(*m.points, calibration)
        return MeasurementResult({"length": length}, calibration.unit, f"{_fmt(length)} {unit}")
    if m.kind == "angle":
        try:
            degrees = angle_degrees(*m.points, calibration)
        except ValueError:
            return MeasurementResult({}, "deg", "angle: arms of zero length")
        return MeasurementResult({"angle": degrees}, "deg", f"{degrees:.1f}°")
    if m.kind == "ctr":
        try:
            heart, thorax, ratio = cardiothoracic_ratio(m.points, calibration)
        except ValueError as exc:
            return MeasurementResult({}, calibration.unit, f"CTR: {exc}")
        return MeasurementResult({"heart": heart, "thorax": thorax, "ratio": ratio}, calibration.unit,
                                 f"CTR {ratio:.2f} ({_fmt(heart)} / {_fmt(thorax)} {unit})")
    return _region_result(m, calibration, pixels, value_unit)


def _region_result(m: Measurement, calibration: Calibration, pixels: np.ndarray | None,
                   value_unit: str) -> MeasurementResult:
    area = calibration.area(region_area_px(m.kind, *m.points))
    area_text = f"area {_fmt(area)} {calibration.area_unit}"
    values = {"area": area}
    if pixels is None:
        return MeasurementResult(values, calibration.unit, area_text)
    try:
        stats = region_stats(m.kind, *m.points, pixels)
    except ValueError as exc:
        return MeasurementResult(values, calibration.unit, f"{area_text}; {exc}")
    values.update(mean=stats.mean, sd=stats.sd, min=stats.minimum, max=stats.maximum,
                  pixels=float(stats.count))
    suffix = f" {value_unit}" if value_unit else ""
    text = (f"mean {stats.mean:.4g} SD {stats.sd:.4g} min {stats.minimum:.4g} "
            f"max {stats.maximum:.4g}{suffix}; {area_text}")
    return MeasurementResult(values, calibration.unit, text)
