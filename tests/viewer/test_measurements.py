"""Measurement geometry and maths without Qt: known spacings, angles, ROI values, CTR."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from viewer.model.calibration import UNCALIBRATED, Calibration, calibration_for
from viewer.model.measurement_store import MeasureContext, MeasurementStore
from viewer.model.measurements import (Measurement, angle_degrees, cardiothoracic_ratio, measure,
                                       region_mask, region_stats, ruler_length)
from viewer.model.study import View

PS = Calibration(0.2, 0.2, "Pixel Spacing")


def test_ruler_length_in_mm_with_known_spacing_and_px_without():
    assert ruler_length((10, 10), (40, 50), PS) == pytest.approx(50 * 0.2)
    assert ruler_length((10, 10), (40, 50), UNCALIBRATED) == pytest.approx(50.0)
    anisotropic = Calibration(0.5, 0.1, "Pixel Spacing")  # rows 0.5 mm, columns 0.1 mm
    assert ruler_length((0, 0), (100, 0), anisotropic) == pytest.approx(10.0)
    assert ruler_length((0, 0), (0, 100), anisotropic) == pytest.approx(50.0)


def test_ruler_text_names_the_unit():
    m = Measurement("ruler", "v", ((0, 0), (0, 100)))
    assert measure(m, PS).text == "20.0 mm"
    assert measure(m, UNCALIBRATED).text == "100.0 px"
    corrected = Calibration(0.1, 0.1, "detector, corrected ×1.10")
    assert measure(m, corrected).text == "10.0 mm (detector, corrected ×1.10)"


@pytest.mark.parametrize("a,b,expected", [((10, 0), (0, 10), 90.0), ((10, 0), (10, 10), 45.0),
                                          ((10, 0), (-10, 0), 180.0), ((10, 0), (20, 0), 0.0),
                                          ((0, -5), (5, 5 * math.sqrt(3)), 150.0)])
def test_angle_degrees(a, b, expected):
    assert angle_degrees(a, (0, 0), b) == pytest.approx(expected, abs=1e-9)


def test_angle_with_zero_arm_is_reported_not_raised():
    with pytest.raises(ValueError, match="non-zero length"):
        angle_degrees((0, 0), (0, 0), (1, 1))
    result = measure(Measurement("angle", "v", ((0, 0), (0, 0), (1, 1))), PS)
    assert result.values == {} and "zero length" in result.text


def test_rect_roi_stats_on_a_known_array():
    pixels = np.arange(100, dtype=np.float32).reshape(10, 10)  # value = 10 * row + col
    stats = region_stats("rect", (2, 3), (5, 6), pixels)  # columns 2..4, rows 3..5
    inside = pixels[3:6, 2:5]
    assert stats.count == 9
    assert stats.mean == pytest.approx(inside.mean())
    assert stats.sd == pytest.approx(inside.std())
    assert (stats.minimum, stats.maximum) == (32.0, 54.0)
    result = measure(Measurement("rect", "v", ((5, 6), (2, 3))), PS, pixels)
    assert result.values["area"] == pytest.approx(3 * 3 * 0.04)
    assert result.values["mean"] == pytest.approx(43.0)
    assert "mm²" in result.text and "mean 43" in result.text


def test_ellipse_mask_and_area():
    mask = region_mask("ellipse", (0, 0), (10, 10), (10, 10))
    assert mask[5, 5] and not mask[0, 0] and not mask[9, 9]
    assert mask.sum() == pytest.approx(math.pi * 25, rel=0.1)
    pixels = np.zeros((10, 10), np.float32)
    pixels[mask] = 7.0
    result = measure(Measurement("ellipse", "v", ((0, 0), (10, 10))), UNCALIBRATED, pixels)
    assert result.values["area"] == pytest.approx(math.pi * 25)
    assert (result.values["mean"], result.values["sd"], result.values["min"]) == (7.0, 0.0, 7.0)
    assert "px²" in result.text


def test_region_without_pixel_centres_says_so():
    result = measure(Measurement("rect", "v", ((1.1, 1.1), (1.2, 1.2))), PS, np.zeros((4, 4)))
    assert "no pixel centre" in result.text and "mean" not in result.values


def test_cardiothoracic_ratio_uses_horizontal_widths():
    points = ((30, 50), (80, 55), (10, 40), (110, 42))  # heart 50 px, thorax 100 px
    heart, thorax, ratio = cardiothoracic_ratio(points, PS)
    assert (heart, thorax, ratio) == pytest.approx((10.0, 20.0, 0.5))
    result = measure(Measurement("ctr", "v", points), PS)
    assert result.text == "CTR 0.50 (10.0 / 20.0 mm)"
    assert measure(Measurement("ctr", "v", ((0, 0), (1, 0), (5, 0), (5, 9))), PS).values == {}


def test_measurement_rejects_wrong_point_counts_and_kinds():
    with pytest.raises(ValueError, match="needs 2 points"):
        Measurement("ruler", "v", ((0, 0),))
    with pytest.raises(ValueError, match="unknown measurement kind 'circle'"):
        Measurement("circle", "v", ((0, 0), (1, 1)))
    m = Measurement("ruler", "v", ((0, 0), (1, 1)))
    assert m.moved(2, 3).points == ((2, 3), (3, 4))
    assert m.with_point(1, (5, 5)).points == ((0, 0), (5, 5))


def test_calibration_sources(tmp_path, make_dicom):
    assert calibration_for(View("a", tmp_path / "a.png", pixel_spacing=None)).label == "px"
    ps = View("b", tmp_path / "b.dcm", pixel_spacing=(0.15, 0.15), pixel_spacing_source="PixelSpacing")
    assert calibration_for(ps).label == "mm" and calibration_for(ps).row_mm == 0.15
    pixels = np.zeros((4, 4), np.uint16)
    with_factor = make_dicom(pixels, "c.dcm", ImagerPixelSpacing=[0.22, 0.22],
                             EstimatedRadiographicMagnificationFactor=1.1)
    detector = View("c", with_factor, pixel_spacing=(0.22, 0.22), pixel_spacing_source="ImagerPixelSpacing")
    cal = calibration_for(detector)
    assert cal.label == "mm (detector, corrected ×1.10)"
    assert cal.row_mm == pytest.approx(0.2)
    without = make_dicom(pixels, "d.dcm", ImagerPixelSpacing=[0.22, 0.22])
    plain = View("d", without, pixel_spacing=(0.22, 0.22), pixel_spacing_source="ImagerPixelSpacing")
    assert calibration_for(plain).label == "mm (detector, uncorrected)"
    assert calibration_for(plain).col_mm == pytest.approx(0.22)
    zero = View("e", tmp_path / "e.dcm", pixel_spacing=(0.0, 0.0), pixel_spacing_source="PixelSpacing")
    assert calibration_for(zero).label == "px"


def test_store_signals_selection_results_and_json_without_identifiers(tmp_path):
    store = MeasurementStore()
    events: list[tuple[str, str]] = []
    store.changed.connect(lambda action, m: events.append((action, m.kind)))
    store.set_context("1.2.3.4", MeasureContext(PS, lambda: np.ones((20, 20)), "", "PA"))
    ruler = store.add(Measurement("ruler", "1.2.3.4", ((0, 0), (30, 40))))
    roi = store.add(Measurement("rect", "1.2.3.4", ((0, 0), (4, 4))))
    store.update(ruler.moved(1, 1))
    store.select(roi.measurement_id)
    assert store.result(store.get(roi.measurement_id)).values["mean"] == 1.0
    assert store.remove_selected() and store.selected_id is None
    assert events == [("added", "ruler"), ("added", "rect"), ("changed", "ruler"), ("removed", "rect")]
    path = store.write_json(tmp_path / "m.json")
    data = json.loads(path.read_text())
    assert data["measurements"][0]["values"]["length"] == pytest.approx(10.0)
    assert data["measurements"][0]["view"] == "PA"
    assert "1.2.3.4" not in path.read_text()
    assert "1.2.3.4" in json.dumps(store.to_dict(include_identifiers=True))
    with pytest.raises(ValueError, match="unknown tool"):
        store.set_tool("laser")


@pytest.mark.parametrize("kind", ["rect", "ellipse"])
def test_region_stats_match_the_full_image_mask(kind):
    rng = np.random.default_rng(0)
    pixels = rng.normal(100, 20, (64, 80)).astype(np.float32)
    p0, p1 = (7.3, 5.6), (61.2, 40.9)
    full = pixels[region_mask(kind, p0, p1, pixels.shape)]
    stats = region_stats(kind, p0, p1, pixels)
    assert stats.count == full.size
    assert stats.mean == pytest.approx(float(full.mean()), rel=1e-6)
    assert stats.maximum == pytest.approx(float(full.max()))
    edge = region_stats(kind, (-5, -5), (3, 3), pixels)  # partly outside the image
    assert edge.count == int(region_mask(kind, (-5, -5), (3, 3), pixels.shape).sum())
