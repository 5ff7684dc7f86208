"""Main window behaviour on a hand-made two-view study (pytest-qt, offscreen)."""
from __future__ import annotations


import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (QAbstractButton, QAbstractItemView, QApplication, QLabel, QLineEdit,
                               QWidget)

from viewer.model.display import DRAG_PIXELS_PER_RANGE
from viewer.render import render_uint8


def _linear_window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR window to uint8, written out independently."""
    y = (x.astype(np.float64) - (center - 0.5)) / (width - 1) + 0.5
    return np.rint(np.clip(y, 0, 1) * 255).astype(np.uint8)


def test_open_folder_shows_views_in_reading_order_and_one_problem(opened, study_dir):
    views = opened.image_views()
    assert [v.view.view_position for v in views] == ["PA", "LL"]
    rows = opened.problems.rows()
    assert len(rows) == 1
    assert rows[0][0].endswith("garbage.dcm") and rows[0][1]
    assert opened.study_browser.all_texts()[0].startswith("Doe Jane")
    assert str(study_dir.resolve()) == opened.recent_folders()[0]


def test_initial_rendering_uses_file_window(facts, opened):
    pa = opened.image_views()[0]
    expected = _linear_window(facts.gradient(), 15000, 30000)
    np.testing.assert_array_equal(pa.rendered_uint8(), expected)


def test_right_drag_changes_rendered_pixels_as_window_math_says(facts, qtbot, opened):
    pa = opened.image_views()[0]
    start = QPoint(pa.width() // 2, pa.height() // 2)
    qtbot.mousePress(pa, Qt.MouseButton.RightButton, pos=start)
    qtbot.mouseMove(pa, start + QPoint(40, 20))
    qtbot.mouseRelease(pa, Qt.MouseButton.RightButton, pos=start + QPoint(40, 20))
    step = (30710 - 0) / DRAG_PIXELS_PER_RANGE  # data range of the PA gradient
    center, width = 15000 + 20 * step, 30000 + 40 * step
    assert pa.state.window_center == pytest.approx(center)
    assert pa.state.window_width == pytest.approx(width)
    shown = pa.rendered_uint8()
    np.testing.assert_array_equal(shown, render_uint8(pa.pixels.image, (center, width)))
    np.testing.assert_array_equal(shown, _linear_window(facts.gradient(), center, width))
    assert not np.array_equal(shown, _linear_window(facts.gradient(), 15000, 30000))


def test_window_sync_copies_window_to_other_views(opened):
    pa, lat = opened.image_views()
    opened.actions_by_key["sync_wl"].setChecked(True)
    pa.state.set_window(1000, 500)
    assert (lat.state.window_center, lat.state.window_width) == (1000, 500)
    opened.actions_by_key["sync_wl"].setChecked(False)
    pa.state.set_window(2000, 800)
    assert (lat.state.window_center, lat.state.window_width) == (1000, 500)


def _all_texts(window) -> list[str]:
    texts = [window.windowTitle()]
    widgets = window.findChildren(QWidget) + QApplication.topLevelWidgets()
    for widget in widgets:
        texts.append(widget.windowTitle())
        if isinstance(widget, (QLabel, QLineEdit, QAbstractButton)):
            texts.append(widget.text())
        if isinstance(widget, QAbstractItemView) and widget.model() is not None:
            texts += _model_texts(widget.model())
        if hasattr(widget, "overlay_lines"):
            texts += [line for lines in widget.overlay_lines().values() for line in lines]
    return texts


def _model_texts(model, parent=None) -> list[str]:
    from PySide6.QtCore import QModelIndex

    parent = parent or QModelIndex()
    out = []
    for r in range(model.rowCount(parent)):
        for c in range(model.columnCount(parent)):
            out.append(str(model.index(r, c, parent).data() or ""))
        out += _model_texts(model, model.index(r, 0, parent))
    return out


def test_hide_phi_removes_patient_name_and_id_everywhere(facts, qtbot, opened):
    opened.actions_by_key["tag_browser"].trigger()
    browser = opened._tag_dialog.browser
    qtbot.waitUntil(lambda: browser.model.rowCount() > 0, timeout=5000)
    name_bits = ("Doe", "Jane", facts.patient_id)
    before = "\n".join(_all_texts(opened))
    assert all(bit in before for bit in name_bits), "test setup: PHI should be visible first"
    opened.actions_by_key["hide_phi"].trigger()
    assert opened.hide_phi
    after = "\n".join(_all_texts(opened))
    for bit in name_bits:
        assert bit not in after
    assert "Anonymous" in opened.windowTitle()
    opened.set_hide_phi(False)
    assert facts.patient_id in "\n".join(_all_texts(opened))


def test_screenshot_is_not_blank_and_shows_the_xray(qtbot, opened):
    qtbot.wait(50)
    grab = opened.grab().toImage()
    arr = np.frombuffer(grab.constBits(), np.uint8).reshape(grab.height(), grab.bytesPerLine())
    assert arr.std() > 10
    pa = opened.image_views()[0]
    ratio = grab.devicePixelRatio()
    for fy in (0.35, 0.5, 0.6):
        pos = QPointF(pa.width() / 2, pa.height() * fy)
        x, y = pa.image_point(pos)
        expected = int(pa.rendered_uint8()[int(y), int(x)])
        at = pa.mapTo(opened, pos.toPoint())
        pixel = grab.pixelColor(int(at.x() * ratio), int(at.y() * ratio))
        assert abs(pixel.red() - expected) <= 3 and abs(pixel.green() - expected) <= 3


def test_wheel_zoom_keeps_point_under_cursor(opened):
    pa = opened.image_views()[0]
    pos = QPointF(pa.width() * 0.3, pa.height() * 0.6)
    before = pa.image_point(pos)
    zoom_before = pa.state.transform(pa.image_size(), pa.widget_size()).zoom
    event = QWheelEvent(pos, pa.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(pa, event)
    after = pa.image_point(pos)
    assert pa.state.zoom == pytest.approx(zoom_before * 2 ** 0.5)
    assert after == pytest.approx(before, abs=1e-6)


def test_left_drag_pans_and_fit_restores(qtbot, opened):
    pa = opened.image_views()[0]
    start = QPoint(100, 100)
    before = pa.image_point(QPointF(start))
    qtbot.mousePress(pa, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(pa, start + QPoint(30, 0))
    qtbot.mouseRelease(pa, Qt.MouseButton.LeftButton, pos=start + QPoint(30, 0))
    moved = pa.image_point(QPointF(start + QPoint(30, 0)))
    assert moved == pytest.approx(before, abs=1e-6)
    opened.actions_by_key["fit"].trigger()
    assert pa.state.fit


def test_tag_browser_filter_finds_patient_name_and_nested_items(facts, qtbot, opened):
    opened.actions_by_key["tag_browser"].trigger()
    browser = opened._tag_dialog.browser
    qtbot.waitUntil(lambda: browser.model.rowCount() > 0, timeout=5000)
    browser.filter_edit.setText("PatientName")
    rows = browser.visible_rows()
    assert any(r[1] == "PatientName" and r[3] == facts.patient_name for r in rows)
    assert not any(r[1] == "Modality" for r in rows)
    browser.filter_edit.setText("postero-anterior")
    rows = browser.visible_rows()
    assert any(r[1] == "ViewCodeSequence" for r in rows)  # parent kept
    assert any(r[3] == "postero-anterior" for r in rows)  # nested item found


def test_export_png_writes_rendered_image(facts, qtbot, opened, tmp_path):
    pa = opened.image_views()[0]
    pa.state.set_window(12000, 9000)
    out = tmp_path / "pa.png"
    saved = []
    opened.export_view_png(out, on_done=saved.append)
    qtbot.waitUntil(lambda: bool(saved), timeout=5000)
    arr = np.asarray(Image.open(out))
    assert arr.shape == (facts.rows, facts.cols)
    np.testing.assert_array_equal(arr, _linear_window(facts.gradient(), 12000, 9000))
    pa.state.rotate(1)
    out2 = tmp_path / "pa_rot.png"
    opened.export_view_png(out2, on_done=saved.append)
    qtbot.waitUntil(lambda: len(saved) == 2, timeout=5000)
    rotated = np.asarray(Image.open(out2))
    assert rotated.shape == (facts.cols, facts.rows)
    np.testing.assert_array_equal(rotated, np.rot90(arr, -1))


def test_presets_invert_and_reset(opened):
    pa = opened.image_views()[0]
    pa.apply_preset("full")
    assert (pa.state.window_center, pa.state.window_width) == pytest.approx((15355, 30710))
    opened.actions_by_key["invert"].trigger()
    assert pa.state.invert
    np.testing.assert_array_equal(
        pa.rendered_uint8(), render_uint8(pa.pixels.image, (15355, 30710), invert=True))
    opened.actions_by_key["reset"].trigger()
    assert pa.state.window is None and not pa.state.invert
    with pytest.raises(ValueError, match="unknown window preset"):
        pa.apply_preset("brain")


def test_overlay_text_and_selection(qtbot, opened):
    pa, lat = opened.image_views()
    lines = pa.overlay_lines()
    assert "PA" in lines["top_right"]
    assert lines["bottom_left"][0] == "W 30000  L 15000"
    assert "2024-01-05" in lines["top_left"]
    qtbot.mouseClick(lat, Qt.MouseButton.LeftButton, pos=QPoint(20, 20))
    assert opened.selected_view_id == lat.view_id and lat.is_selected and not pa.is_selected


def test_cursor_reports_stored_value(facts, qtbot, opened):
    pa = opened.image_views()[0]
    seen: list[str] = []
    pa.cursor_info.connect(seen.append)
    pos = QPointF(pa.width() / 2, pa.height() / 2)
    x, y = pa.image_point(pos)
    qtbot.mouseMove(pa, pos.toPoint())
    expected = int(facts.gradient()[int(y), int(x)])
    assert any(f"stored {expected}" in text for text in seen)


def test_shortcuts_dialog_lists_every_action_shortcut(window):
    from viewer.qt.dialogs import ShortcutsDialog
    from viewer.qt.shortcuts import ACTIONS

    dialog = ShortcutsDialog()
    keys = {dialog.table.item(r, 2).text() for r in range(dialog.table.rowCount())}
    for spec in ACTIONS:
        if spec.shortcut:
            assert spec.shortcut in keys
            assert window.actions_by_key[spec.key].shortcut().toString() != ""
    shortcuts = [a.shortcut for a in ACTIONS if a.shortcut]
    assert len(shortcuts) == len(set(shortcuts)), "duplicate shortcut in the action table"


def test_open_empty_folder_and_cancel(qtbot, window, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with qtbot.waitSignal(window.scan_finished, timeout=5000) as blocker:
        window.open_path(empty)
    assert blocker.args == [0]
    assert window.image_views() == []
    window.open_path(empty)
    window.cancel_scan()
    assert not window.progress.isVisible()


def test_view_that_fails_to_decode_shows_message_and_problem(facts, qtbot, window, tmp_path):
    folder = facts.make_study(tmp_path / "broken")
    lat = folder / "study" / "lat.dcm"
    data = lat.read_bytes()
    lat.write_bytes(data[: len(data) - 3000])  # header intact, pixel data truncated
    window.open_path(folder)
    qtbot.waitUntil(lambda: window.problems.count() >= 2 or (
        len(window.image_views()) == 1 and window.image_views()[0].pixels is not None), timeout=10000)
    qtbot.waitUntil(lambda: all(v.pixels is not None or v.message.startswith("Cannot show")
                                for v in window.image_views()), timeout=10000)
    rows = window.problems.rows()
    assert any(w.endswith("lat.dcm") for w, _ in rows)
    assert any(w.endswith("garbage.dcm") for w, _ in rows)
    pa = window.image_views()[0]
    assert pa.view.view_position == "PA" and pa.pixels is not None


def test_zoomed_in_view_switches_to_full_resolution(facts, qtbot, window, tmp_path):
    from viewer.qt.image_source import DISPLAY_MAX_SIDE

    cols = DISPLAY_MAX_SIDE + 100  # wider than the display copy: drawn from a 2x-reduced copy
    folder = facts.make_study(tmp_path / "wide", rows=40, cols=cols)
    window.open_path(folder)
    qtbot.waitUntil(lambda: len(window.image_views()) == 2 and
                    all(v.pixels is not None for v in window.image_views()), timeout=10000)
    pa = window.image_views()[0]
    assert pa.pixels.is_downsampled and pa.rendered_uint8().shape == (20, cols // 2 + cols % 2)
    pa.state.set_zoom(4.0)
    pa.repaint()
    qtbot.waitUntil(lambda: pa.rendered_uint8().shape == (40, cols), timeout=10000)
    np.testing.assert_array_equal(pa.rendered_uint8(), render_uint8(pa.pixels.image, None))
    pa.state.set_window(5000, 2000)  # new window: display copy at once, full resolution again later
    assert pa.rendered_uint8().shape == (20, cols // 2 + cols % 2)
    pa.repaint()
    qtbot.waitUntil(lambda: pa.rendered_uint8().shape == (40, cols), timeout=10000)
    np.testing.assert_array_equal(pa.rendered_uint8(), render_uint8(pa.pixels.image, (5000, 2000)))
