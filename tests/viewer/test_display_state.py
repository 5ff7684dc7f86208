"""DisplayState, ViewTransform, WindowSync, W/L drag and presets: pure math, no Qt."""
from __future__ import annotations

import itertools

import pytest

from viewer.model.display import (DisplayState, ViewTransform, WindowSync, drag_to_window,
                                  fit_zoom, relative_presets)
from viewer.model.events import Signal


def test_signal_connect_emit_disconnect():
    signal, calls = Signal(), []
    signal.connect(calls.append)
    signal.connect(calls.append)  # second connect is a no-op
    signal.emit(1)
    with signal.blocked():
        signal.emit(2)
    signal.disconnect(calls.append)
    signal.emit(3)
    assert calls == [1]
    with pytest.raises(ValueError, match="not connected"):
        signal.disconnect(calls.append)


def test_window_events_and_validation():
    state, kinds = DisplayState(), []
    state.changed.connect(kinds.append)
    state.set_window(40, 400)
    state.set_window(40, 400)  # unchanged: no event
    state.toggle_invert()
    state.rotate()
    state.reset()
    assert kinds == ["window", "invert", "transform", "reset"]
    assert state.window is None and not state.invert and state.rotation == 0
    for bad in (0, -5, float("nan")):
        with pytest.raises(ValueError, match="window"):
            state.set_window(100, bad)


@pytest.mark.parametrize("rotation,flip_h,flip_v",
                         list(itertools.product((0, 90, 180, 270), (False, True), (False, True))))
def test_transform_round_trip(rotation, flip_h, flip_v):
    t = ViewTransform((300, 200), (640, 480), 1.7, (12.0, -5.0), rotation, flip_h, flip_v)
    for x, y in [(0, 0), (299.5, 10), (150, 100), (7.25, 188)]:
        u, v = t.image_to_widget(x, y)
        assert t.widget_to_image(u, v) == pytest.approx((x, y))


def test_transform_known_points():
    # 90 degrees clockwise: the image's top-left corner goes to the top-right.
    t = ViewTransform((4, 2), (2, 4), 1.0, (0, 0), 90)
    assert t.image_to_widget(0, 0) == pytest.approx((2, 0))
    assert t.image_to_widget(4, 2) == pytest.approx((0, 4))
    flipped = ViewTransform((4, 2), (4, 2), 1.0, (0, 0), 0, flip_h=True)
    assert flipped.image_to_widget(0, 0) == pytest.approx((4, 0))
    m11, m12, m21, m22, dx, dy = t.matrix()  # QTransform convention
    assert (m11 * 4 + m21 * 2 + dx, m12 * 4 + m22 * 2 + dy) == pytest.approx((0, 4))


def test_fit_zoom_accounts_for_rotation():
    assert fit_zoom((1000, 500), (500, 500)) == pytest.approx(0.5)
    assert fit_zoom((1000, 500), (500, 1000), rotation=90) == pytest.approx(1.0)


def test_zoom_about_cursor_keeps_point_fixed():
    state = DisplayState()
    image, widget = (2500, 3000), (800, 600)
    state.rotate()
    state.flip_horizontal()
    cursor = (123.0, 456.0)
    before = state.transform(image, widget).widget_to_image(*cursor)
    for factor in (2.0, 1.5, 0.25):
        state.zoom_at(factor, cursor, image, widget)
        assert state.transform(image, widget).widget_to_image(*cursor) == pytest.approx(before)
    assert not state.fit
    assert state.zoom == pytest.approx(fit_zoom(image, widget, 90) * 2.0 * 1.5 * 0.25)


def test_pan_in_fit_mode_needs_sizes():
    state = DisplayState()
    with pytest.raises(ValueError, match="fit mode"):
        state.pan_by(5, 5)
    state.pan_by(5, -3, (100, 100), (200, 200))
    assert state.pan == (5, -3) and state.zoom == pytest.approx(2.0)


def test_drag_to_window_is_proportional_to_range():
    c, w = drag_to_window(100, 200, dx=100, dy=-50, data_range=(0, 4095))
    assert (c, w) == pytest.approx((100 - 50 * 4.095, 200 + 100 * 4.095))
    # The same drag on 8-bit data moves 16x less.
    c8, w8 = drag_to_window(100, 200, dx=100, dy=-50, data_range=(0, 255))
    assert w8 - 200 == pytest.approx((w - 200) * 255 / 4095)
    # Width never collapses to zero or below.
    assert drag_to_window(10, 5, dx=-10_000, dy=0, data_range=(0, 4095))[1] == 1.0
    # Inverted images: dragging down still darkens, so the centre moves the other way.
    assert drag_to_window(100, 10, 0, 10, (0, 1000), inverted=True)[0] == pytest.approx(90)


def test_relative_presets_follow_display_order():
    presets = {p.explanation: p for p in relative_presets((0, 1000))}
    assert presets["Full range"].center == 500 and presets["Full range"].width == 1000
    assert presets["Lung"].center == pytest.approx(350)
    assert presets["Lung"].center < presets["Mediastinum"].center < presets["Bone"].center
    # MONOCHROME1: display order is (high, low): lung centre moves to the high values.
    mono1 = {p.explanation: p for p in relative_presets((1000, 0))}
    assert mono1["Lung"].center == pytest.approx(650) and mono1["Lung"].width == 500
    ct = {p.explanation: p for p in relative_presets((-1024, 3071), "CT")}
    assert (ct["Lung"].center, ct["Lung"].width) == (-600, 1500)


def test_window_sync_copies_window_and_avoids_loops():
    a, b, c = DisplayState(), DisplayState(), DisplayState()
    sync = WindowSync()
    for s in (a, b, c):
        sync.add(s)
    events = []
    b.changed.connect(events.append)
    a.set_window(300, 600)
    assert (b.window_center, b.window_width) == (300, 600) == (c.window_center, c.window_width)
    assert events == ["window"]
    a.zoom_at(2.0, (0, 0), (10, 10), (10, 10))  # geometry is not synced
    assert b.fit
    sync.enabled = False
    a.set_window(1, 2)
    assert b.window_center == 300
    sync.remove(b)
    sync.enabled = True
    a.set_window(5, 6)
    assert b.window_center == 300 and c.window_center == 5
