"""Histogram plugin: a dock with the selected view's modality-value histogram and its window.

The header names the view by `View.display_label` ("PA", "LAT L", "Image 2"),
which never contains a file name, so it is safe while PHI is hidden.

The histogram is computed in a worker (``np.histogram`` over the modality
values); the window [center - width/2, center + width/2] is shaded and its
centre drawn as a line, updated live while the user drags the window.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QCheckBox, QLabel, QVBoxLayout, QWidget

from viewer.plugin_api import BasePlugin, PluginHost, StudyHandle, ViewHandle
from viewer.qt.workers import run_in_pool

BINS = 256


@dataclass(frozen=True)
class Histogram:
    """Counts per bin and the bin edges (``len(edges) == len(counts) + 1``)."""

    counts: np.ndarray
    edges: np.ndarray

    @property
    def value_range(self) -> tuple[float, float]:
        return float(self.edges[0]), float(self.edges[-1])


def compute_histogram(values: np.ndarray, bins: int = BINS) -> Histogram:
    """``np.histogram`` of the finite values (an empty image gives one empty bin)."""
    flat = np.asarray(values, dtype=np.float32).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return Histogram(np.zeros(1, dtype=np.int64), np.array([0.0, 1.0]))
    counts, edges = np.histogram(flat, bins=bins)
    return Histogram(counts, edges)


class HistogramWidget(QWidget):
    """Bars drawn with QPainter; log scale optional; the window shaded on top."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.histogram: Histogram | None = None
        self.window: tuple[float, float] | None = None
        self.log_scale = True
        self.setMinimumSize(220, 140)

    def set_histogram(self, histogram: Histogram | None) -> None:
        self.histogram = histogram
        self.update()

    def set_window(self, window: tuple[float, float] | None) -> None:
        self.window = window
        self.update()

    def set_log_scale(self, on: bool) -> None:
        self.log_scale = on
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(20, 22, 26))
        plot = QRectF(self.rect()).adjusted(8, 8, -8, -20)
        if self.histogram is None:
            painter.setPen(QColor(150, 150, 150))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No view selected")
            return
        self._draw_bars(painter, plot)
        self._draw_window(painter, plot)
        lo, hi = self.histogram.value_range
        painter.setPen(QColor(180, 180, 180))
        painter.drawText(QPointF(plot.left(), self.height() - 5), f"{lo:.0f}")
        text = f"{hi:.0f}"
        painter.drawText(QPointF(plot.right() - painter.fontMetrics().horizontalAdvance(text),
                                 self.height() - 5), text)
        painter.end()

    def _draw_bars(self, painter: QPainter, plot: QRectF) -> None:
        counts = self.histogram.counts.astype(np.float64)
        heights = np.log1p(counts) if self.log_scale else counts
        top = heights.max() if heights.size and heights.max() > 0 else 1.0
        bar_w = plot.width() / len(counts)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(150, 175, 205))
        for i, h in enumerate(heights):
            if h > 0:
                bar_h = plot.height() * h / top
                painter.drawRect(QRectF(plot.left() + i * bar_w, plot.bottom() - bar_h,
                                        max(bar_w, 1.0), bar_h))

    def _x(self, value: float, plot: QRectF) -> float:
        lo, hi = self.histogram.value_range
        return plot.left() + (value - lo) / max(hi - lo, 1e-9) * plot.width()

    def _draw_window(self, painter: QPainter, plot: QRectF) -> None:
        if self.window is None:
            return
        center, width = self.window
        left = max(self._x(center - width / 2, plot), plot.left())
        right = min(self._x(center + width / 2, plot), plot.right())
        if right > left:
            painter.fillRect(QRectF(left, plot.top(), right - left, plot.height()),
                             QColor(255, 200, 60, 28))
        x = self._x(center, plot)
        if plot.left() <= x <= plot.right():
            painter.setPen(QPen(QColor(255, 200, 60), 1.5))
            painter.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))


class HistogramPanel(QWidget):
    """Dock content: a status line, the histogram, a log-scale toggle."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("No study open", self)
        self.label.setWordWrap(True)
        self.plot = HistogramWidget(self)
        self.log_box = QCheckBox("Log counts", self)
        self.log_box.setChecked(True)
        self.log_box.toggled.connect(self.plot.set_log_scale)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.label)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.log_box)


class HistogramPlugin(BasePlugin):
    """Adds the Histogram dock; follows the selected view and its window."""

    def __init__(self) -> None:
        super().__init__()
        self.panel: HistogramPanel | None = None
        self.view_id: str | None = None
        self._request = 0

    def activate(self, host: PluginHost) -> None:
        super().activate(host)
        self.panel = HistogramPanel()
        host.add_dock_panel("Histogram", self.panel, area="right")

    def study_opened(self, study: StudyHandle) -> None:
        self.panel.label.setText(f"{len(study.views)} view(s); select one")

    def study_not_applicable(self, study: StudyHandle, reason: str) -> None:
        self.panel.label.setText(reason)

    def view_selected(self, view: ViewHandle) -> None:
        self.view_id = view.view_id
        self._request += 1
        request = self._request
        self.panel.label.setText(f"{view.meta.display_label}: computing…")
        run_in_pool(lambda: compute_histogram(view.modality_pixels()),
                    lambda hist: self._show(request, view, hist),
                    lambda exc: self._failed(request, view, exc))

    def window_changed(self, view_id: str, center: float, width: float) -> None:
        if view_id == self.view_id and self.panel is not None:
            self.panel.plot.set_window((center, width))

    def study_closed(self, study: StudyHandle) -> None:
        self._request += 1
        self.view_id = None
        self.panel.plot.set_histogram(None)
        self.panel.label.setText("No study open")

    def _show(self, request: int, view: ViewHandle, hist: Histogram) -> None:
        if request != self._request or self.panel is None:
            return
        total = int(hist.counts.sum())
        self.panel.label.setText(f"{view.meta.display_label}: {total:,} pixels, "
                                 f"values {hist.value_range[0]:.0f}…{hist.value_range[1]:.0f}")
        self.panel.plot.set_histogram(hist)
        self.panel.plot.set_window(self.host.current_window(view.view_id))

    def _failed(self, request: int, view: ViewHandle, exc: BaseException) -> None:
        if request == self._request and self.panel is not None:
            # the message may quote the file's path: only its kind while PHI is hidden
            why = type(exc).__name__ if self.host.phi_hidden else str(exc)
            self.panel.label.setText(f"{view.meta.display_label}: cannot read pixels ({why})")


def create_plugin() -> HistogramPlugin:
    """Factory named by the manifest."""
    return HistogramPlugin()
