"""Painting helpers for an image view: corner text and plugin colour bars."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QLinearGradient, QPainter, QPen

from viewer.plugin_api import ColorBar

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
TEXT_COLOR = QColor(235, 235, 200)
SHADOW = QColor(0, 0, 0, 200)
MARGIN = 6.0

# A few control points per named colormap (low -> high), used when a ColorBar has no table.
NAMED_COLORMAPS: dict[str, list[tuple[int, int, int]]] = {
    "gray": [(0, 0, 0), (255, 255, 255)],
    "hot": [(0, 0, 0), (230, 0, 0), (255, 210, 0), (255, 255, 255)],
    "jet": [(0, 0, 140), (0, 120, 255), (0, 255, 160), (255, 230, 0), (230, 20, 0)],
    "viridis": [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
    "magma": [(0, 0, 4), (81, 18, 124), (183, 55, 121), (252, 137, 97), (252, 253, 191)],
    "inferno": [(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)],
}


def colorbar_stops(bar: ColorBar) -> list[tuple[float, QColor]]:
    """Gradient stops for a colour bar: its own table, or a named map (gray if unknown)."""
    if bar.colors is not None:
        table = np.asarray(bar.colors)
        picks = np.linspace(0, len(table) - 1, min(len(table), 32)).round().astype(int)
        return [(i / (len(picks) - 1), QColor(*[int(v) for v in table[p]]))
                for i, p in enumerate(picks)]
    points = NAMED_COLORMAPS.get(bar.colormap.lower(), NAMED_COLORMAPS["gray"])
    return [(i / (len(points) - 1), QColor(*rgb)) for i, rgb in enumerate(points)]


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def wrap_label(text: str, metrics: QFontMetricsF, width: float, max_lines: int = 3) -> list[str]:
    """``text`` broken at spaces into lines at most ``width`` wide (a word wider than that is
    elided in the middle); past ``max_lines`` the last line is elided at its end."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and metrics.horizontalAdvance(candidate) <= width:
            lines[-1] = candidate
        else:
            lines.append(metrics.elidedText(word, Qt.TextElideMode.ElideMiddle, width))
    if len(lines) > max_lines:
        rest = " ".join(lines[max_lines - 1:])
        lines = lines[:max_lines - 1] + [metrics.elidedText(rest, Qt.TextElideMode.ElideRight, width)]
    return lines


def draw_colorbar(painter: QPainter, bar: ColorBar, rect: QRectF, label_width: float | None = None) -> None:
    """A vertical bar (high value on top) with vmax/vmin ticks and the label above it,
    right-aligned with the bar and wrapped to ``label_width`` (default: no limit)."""
    gradient = QLinearGradient(rect.bottomLeft(), rect.topLeft())
    for pos, color in colorbar_stops(bar):
        gradient.setColorAt(pos, color)
    painter.save()
    painter.setPen(QPen(QColor(200, 200, 200), 1))
    painter.setBrush(gradient)
    painter.drawRect(rect)
    small = QFont(painter.font())
    small.setPointSizeF(max(small.pointSizeF() - 1, 6))
    painter.setFont(small)
    metrics = QFontMetricsF(small)
    right = rect.left() - 4
    for text, y in ((_fmt(bar.vmax), rect.top() + metrics.ascent() / 2),
                    (_fmt(bar.vmin), rect.bottom() + metrics.ascent() / 2 - 2)):
        _shadow_text(painter, QPointF(right - metrics.horizontalAdvance(text), y), text)
    if bar.label:
        width = label_width if label_width is not None else metrics.horizontalAdvance(bar.label) + 1
        lines = wrap_label(bar.label, metrics, max(width, 20.0))
        for row, line in enumerate(reversed(lines)):
            y = rect.top() - 6 - row * metrics.height()
            _shadow_text(painter, QPointF(rect.right() - metrics.horizontalAdvance(line), y), line)
    painter.restore()


def _shadow_text(painter: QPainter, pos: QPointF, text: str) -> None:
    """Text with a 1-px dark drop shadow: readable on bright bone and cheap to draw."""
    painter.setPen(SHADOW)
    painter.drawText(pos + QPointF(1, 1), text)
    painter.setPen(TEXT_COLOR)
    painter.drawText(pos, text)


def draw_corner_text(painter: QPainter, rect: QRectF, lines: dict[str, list[str]]) -> None:
    """Draw up to four blocks of lines in the corners of ``rect`` with a dark outline."""
    painter.save()
    metrics = QFontMetricsF(painter.font())
    step = metrics.height()
    for corner in CORNERS:
        block = [line for line in lines.get(corner, []) if line]
        top = corner.startswith("top")
        left = corner.endswith("left")
        for i, text in enumerate(block):
            width = metrics.horizontalAdvance(text)
            x = rect.left() + MARGIN if left else rect.right() - MARGIN - width
            if top:
                y = rect.top() + MARGIN + metrics.ascent() + i * step
            else:
                y = rect.bottom() - MARGIN - metrics.descent() - (len(block) - 1 - i) * step
            _shadow_text(painter, QPointF(x, y), text)
    painter.restore()
