"""The histogram plugin: panel appears, counts equal np.histogram, window marker follows."""
from __future__ import annotations

import numpy as np
import pytest

from plugins.histogram.plugin import BINS, HistogramPlugin, compute_histogram


def _plugin(win) -> HistogramPlugin:
    return next(a.plugin for a in win.plugin_host.registry.active if a.manifest.name == "Histogram")


def test_compute_histogram_matches_numpy_and_ignores_nan():
    values = np.array([[0, 1, 1, 2], [np.nan, 3, 3, 3]], np.float32)
    hist = compute_histogram(values, bins=3)
    counts, edges = np.histogram(values[np.isfinite(values)], bins=3)
    np.testing.assert_array_equal(hist.counts, counts)
    np.testing.assert_allclose(hist.edges, edges)
    empty = compute_histogram(np.full((2, 2), np.nan))
    assert empty.counts.sum() == 0


def test_panel_shows_histogram_of_selected_view(qtbot, hist_window, hist_study):
    win = hist_window
    dock = win.plugin_host.docks["Histogram"]
    assert dock.isVisible()
    win.open_path(hist_study)
    plugin = _plugin(win)
    qtbot.waitUntil(lambda: len(win.image_views()) == 2 and plugin.panel.plot.histogram is not None,
                    timeout=10000)
    pa = win.image_views()[0]
    assert plugin.view_id == pa.view_id
    values = win.current_study.view(pa.view_id).modality_pixels()
    counts, edges = np.histogram(values, bins=BINS)
    np.testing.assert_array_equal(plugin.panel.plot.histogram.counts, counts)
    np.testing.assert_allclose(plugin.panel.plot.histogram.edges, edges)
    assert values.min() >= -100 and values.max() <= 2 * 4095 - 100  # rescale applied
    qtbot.waitUntil(lambda: plugin.panel.plot.window is not None, timeout=5000)
    assert plugin.panel.plot.window == pytest.approx((3000, 4000))
    pa.state.set_window(1234, 567)
    assert plugin.panel.plot.window == pytest.approx((1234, 567))
    assert "2,000 pixels" in plugin.panel.label.text()


def test_selecting_other_view_updates_and_closing_clears(qtbot, hist_window, hist_study):
    win = hist_window
    win.open_path(hist_study)
    plugin = _plugin(win)
    qtbot.waitUntil(lambda: len(win.image_views()) == 2 and plugin.panel.plot.histogram is not None,
                    timeout=10000)
    lat = win.image_views()[1]
    win.select_view(lat.view_id)
    values = win.current_study.view(lat.view_id).modality_pixels()
    expected = np.histogram(values, bins=BINS)[0]
    qtbot.waitUntil(lambda: np.array_equal(plugin.panel.plot.histogram.counts, expected),
                    timeout=5000)
    assert plugin.panel.plot.histogram.counts.sum() == 40 * 50
    win.close_study()
    assert plugin.panel.plot.histogram is None and plugin.view_id is None


def test_histogram_widget_paints_bars(qtbot, hist_window, hist_study):
    win = hist_window
    win.open_path(hist_study)
    plugin = _plugin(win)
    qtbot.waitUntil(lambda: plugin.panel.plot.histogram is not None, timeout=10000)
    plot = plugin.panel.plot
    plot.resize(300, 160)
    image = plot.grab().toImage()
    bar = image.pixelColor(int(image.width() * 0.5), image.height() - 30)  # near the bottom
    assert bar.blue() > 150  # a bar is drawn where the normal distribution peaks
