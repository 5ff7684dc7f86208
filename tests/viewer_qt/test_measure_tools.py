"""Measurement tools in the window, driven by mouse events (pytest-qt, offscreen)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from tests.viewer.conftest import build_dataset

SIZE = 300
HEART = (100, 220)  # columns of the heart's borders: 120 px wide
THORAX = (30, 270)  # inner rib margins: 240 px wide


def _chest(size: int = SIZE) -> np.ndarray:
    """A drawing with a known thorax (bright band) and heart (brighter block)."""
    img = np.full((size, size), 200, np.uint16)
    img[40:280, THORAX[0]:THORAX[1]] = 1500
    img[150:250, HEART[0]:HEART[1]] = 3000
    return img


def write_dicom(path: Path, pixels: np.ndarray, spacing: list[float] | None,
                imager: list[float] | None = None, magnification: float | None = None) -> Path:
    """A 12-bit DX PA view with the given calibration tags (None: tag absent)."""
    tags = {"PixelSpacing": spacing, "ImagerPixelSpacing": imager,
            "EstimatedRadiographicMagnificationFactor": magnification}
    ds = build_dataset(pixels, bits_stored=12, PatientName="Test^Measure", PatientID="M-1",
                       StudyDate="20240101", Modality="DX", ViewPosition="PA", InstanceNumber=1,
                       **{key: value for key, value in tags.items() if value is not None})
    ds.save_as(path, enforce_file_format=True)
    return path


def _open(qtbot, window, folder: Path):
    window.open_path(folder)
    qtbot.waitUntil(lambda: len(window.image_views()) == 1 and window.image_views()[0].pixels is not None,
                    timeout=15000)
    return window.image_views()[0]


def _at(view, x: float, y: float) -> QPoint:
    u, v = view.current_transform().image_to_widget(x, y)
    return QPoint(round(u), round(v))


def _drag(qtbot, view, start: tuple[float, float], end: tuple[float, float]) -> None:
    a, b = _at(view, *start), _at(view, *end)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(view, (a + b) / 2)
    qtbot.mouseMove(view, b)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=b)


def _exact(view, x: float, y: float) -> tuple[float, float]:
    """The image point the widget pixel nearest to (x, y) maps back to."""
    p = _at(view, x, y)
    return view.image_point(p.toPointF())


@pytest.fixture
def calibrated(tmp_path):
    folder = tmp_path / "cal"
    folder.mkdir()
    write_dicom(folder / "pa.dcm", _chest(), [0.5, 0.5])
    return folder


def test_ruler_on_a_calibrated_image_gives_millimetres(qtbot, window, calibrated):
    view = _open(qtbot, window, calibrated)
    window.actions_by_key["tool_ruler"].trigger()
    _drag(qtbot, view, (20, 100), (220, 100))
    store = window.model.measurements
    assert len(store) == 1
    m = store.all()[0]
    (x0, y0), (x1, y1) = _exact(view, 20, 100), _exact(view, 220, 100)
    expected = np.hypot(x1 - x0, y1 - y0) * 0.5
    assert store.result(m).values["length"] == pytest.approx(expected, abs=1e-6)
    assert store.result(m).values["length"] == pytest.approx(100.0, abs=1.0)  # 200 px x 0.5 mm
    assert store.result(m).text.endswith(" mm")
    assert window.measurements_panel.rows()[0][0] == "Ruler"
    assert window.measurements_panel.rows()[0][2] == store.result(m).text


def test_ruler_is_labelled_px_without_usable_spacing(qtbot, window, tmp_path):
    folder = tmp_path / "uncal"
    folder.mkdir()
    write_dicom(folder / "pa.dcm", _chest(), [0.0, 0.0])  # "0\0": no usable spacing
    view = _open(qtbot, window, folder)
    window.model.measurements.set_tool("ruler")
    _drag(qtbot, view, (50, 50), (50, 250))
    result = window.model.measurements.result(window.model.measurements.all()[0])
    assert result.text.endswith(" px") and result.values["length"] == pytest.approx(200, abs=1.5)


def test_detector_spacing_is_corrected_by_the_magnification_and_says_so(qtbot, window, tmp_path):
    folder = tmp_path / "det"
    folder.mkdir()
    write_dicom(folder / "pa.dcm", _chest(), None, imager=[0.22, 0.22], magnification=1.1)
    view = _open(qtbot, window, folder)
    window.model.measurements.set_tool("ruler")
    _drag(qtbot, view, (50, 150), (250, 150))
    result = window.model.measurements.result(window.model.measurements.all()[0])
    assert result.text.endswith("mm (detector, corrected ×1.10)")
    assert result.values["length"] == pytest.approx(200 * 0.2, abs=0.5)


def test_ctr_on_a_synthetic_chest_with_known_widths(qtbot, window, calibrated):
    view = _open(qtbot, window, calibrated)
    window.actions_by_key["tool_ctr"].trigger()
    _drag(qtbot, view, (HEART[0], 200), (HEART[1], 200))
    assert len(window.model.measurements) == 0  # the thorax width is still missing
    _drag(qtbot, view, (THORAX[0], 120), (THORAX[1], 125))
    m = window.model.measurements.all()[0]
    assert m.points[3][1] == m.points[2][1]  # widths stay horizontal
    values = window.model.measurements.result(m).values
    assert values["ratio"] == pytest.approx(120 / 240, abs=0.01)
    assert values["heart"] == pytest.approx(60.0, abs=0.6) and values["thorax"] == pytest.approx(120.0, abs=0.6)
    assert window.model.measurements.result(m).text.startswith("CTR 0.50")


def test_rectangle_roi_statistics_are_the_modality_values_inside(qtbot, window, calibrated):
    view = _open(qtbot, window, calibrated)
    window.model.measurements.set_tool("rect")
    _drag(qtbot, view, (110, 160), (200, 240))  # inside the heart block: all 3000
    m = window.model.measurements.all()[0]
    values = window.model.measurements.result(m).values
    assert (values["mean"], values["sd"], values["min"], values["max"]) == (3000, 0, 3000, 3000)
    (l, t), (r, b) = m.points
    assert values["area"] == pytest.approx(abs(r - l) * abs(b - t) * 0.25)


def test_measurements_follow_rotation_zoom_and_can_be_moved_and_deleted(qtbot, window, calibrated, tmp_path):
    view = _open(qtbot, window, calibrated)
    store = window.model.measurements
    store.set_tool("ruler")
    view.state.set_zoom(1.5)
    _drag(qtbot, view, (100, 100), (200, 100))
    m = store.all()[0]
    length = store.result(m).values["length"]
    assert length == pytest.approx(50.0, abs=0.5)
    window.actions_by_key["rotate_cw"].trigger()
    window.actions_by_key["flip_h"].trigger()
    store.set_tool("navigate")
    store.select(None)
    middle = _at(view, 150, 100)  # where the ruler's middle is drawn now
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=middle)
    assert store.selected_id == m.measurement_id
    qtbot.mouseMove(view, middle + QPoint(0, 30))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=middle + QPoint(0, 30))
    moved = store.all()[0]
    assert moved.points != m.points
    assert store.result(moved).values["length"] == pytest.approx(length)
    out = window.measurements_panel.export(tmp_path / "m.json")
    data = json.loads(out.read_text())
    assert data["measurements"][0]["view"] == "PA" and data["identifiers_included"] is False
    assert window.model.current_study.views[0].view_id not in out.read_text()
    window.actions_by_key["delete_measurement"].trigger()
    assert len(store) == 0 and window.measurements_panel.rows() == []


def test_angle_is_one_drag_and_one_click(qtbot, window, calibrated):
    view = _open(qtbot, window, calibrated)
    window.actions_by_key["tool_angle"].trigger()
    _drag(qtbot, view, (200, 100), (100, 100))  # first arm: end -> vertex
    assert len(window.model.measurements) == 0
    end = _at(view, 100, 200)
    qtbot.mouseMove(view, end)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=end)
    m = window.model.measurements.all()[0]
    assert window.model.measurements.result(m).values["angle"] == pytest.approx(90.0, abs=1.0)
    assert window.model.measurements.result(m).text.endswith("°")


def test_measurements_panel_exports_a_dicom_sr(qtbot, window, calibrated, tmp_path):
    import pydicom

    view = _open(qtbot, window, calibrated)
    window.model.measurements.set_tool("ruler")
    _drag(qtbot, view, (20, 100), (220, 100))
    saved = []
    window.measurements_panel.export_sr(tmp_path / "sr.dcm", on_done=saved.append)
    qtbot.waitUntil(lambda: bool(saved) or window.problems.count() > 0, timeout=30000)
    assert saved, window.problems.rows()
    sr = pydicom.dcmread(saved[0])
    assert sr.Modality == "SR" and sr.PatientID == "" and "Measure" not in str(sr.PatientName)
    length = window.model.measurements.result(window.model.measurements.all()[0]).values["length"]
    nums = [i for g in sr.ContentSequence for i in getattr(g, "ContentSequence", [])
            for i in getattr(i, "ContentSequence", []) if i.ValueType == "NUM"]
    assert [float(n.MeasuredValueSequence[0].NumericValue) for n in nums] == pytest.approx([length])
