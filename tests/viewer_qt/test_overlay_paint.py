"""Colour-bar labels wrap inside the view instead of running off its left edge."""
from __future__ import annotations

from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter

from viewer.plugin_api import ColorBar
from viewer.qt.overlay_paint import draw_colorbar, wrap_label

LABEL = "contribution to the score vs a normal chest: cardiomegaly"


def test_wrap_keeps_every_word_within_the_width(qapp) -> None:
    metrics = QFontMetricsF(QFont())
    width = metrics.horizontalAdvance("contribution to the score")
    lines = wrap_label(LABEL, metrics, width)
    assert len(lines) >= 2 and " ".join(lines) == LABEL
    assert all(metrics.horizontalAdvance(line) <= width for line in lines)
    assert wrap_label(LABEL, metrics, 10_000) == [LABEL]


def test_a_long_word_is_elided_and_lines_are_capped(qapp) -> None:
    metrics = QFontMetricsF(QFont())
    narrow = metrics.horizontalAdvance("cardio")
    lines = wrap_label("pneumonoultramicroscopic " * 5, metrics, narrow, max_lines=3)
    assert len(lines) == 3 and all(metrics.horizontalAdvance(line) <= narrow for line in lines)
    assert "…" in lines[0] and lines[-1].endswith("…")


def test_the_label_is_painted_inside_a_narrow_view(qapp) -> None:
    """A 160 px wide view: the label's pixels stay right of x = 0 and above the bar."""
    image = QImage(160, 300, QImage.Format.Format_RGB32)
    image.fill(QColor(0, 0, 0))
    painter = QPainter(image)
    rect = QRectF(160 - 26, 120, 12, 120)
    draw_colorbar(painter, ColorBar("hot", 0.0, 1.0, LABEL), rect, label_width=rect.right() - 12)
    painter.end()
    bright = [(x, y) for y in range(0, 118) for x in range(160) if image.pixelColor(x, y).red() > 120]
    assert bright, "no label drawn"
    assert min(x for x, _ in bright) >= 2              # nothing cut at the left edge
    assert min(y for _, y in bright) < 120 - 2 * QFontMetricsF(QFont()).height() * 0.8  # several lines
