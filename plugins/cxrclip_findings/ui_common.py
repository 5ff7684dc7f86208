"""Small widgets shared by the plugin's panels: status line with busy bar, score bars."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QProgressBar, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget)

SCORE_ROLE = Qt.ItemDataRole.UserRole + 1
MUTED_ROLE = SCORE_ROLE + 1  # truthy: draw the bar grey (the view is outside the model's experience)
POINT_ROLE = SCORE_ROLE + 2  # float: the finding's operating point, drawn as a tick on the bar
MUTED = QColor(150, 150, 150)
BAR_LOW, BAR_HIGH = QColor(70, 110, 160), QColor(235, 120, 40)
ERROR_STYLE = "color: #ff7b72;"
MUTED_STYLE = "color: #9aa0a6;"
TRACK = QColor(255, 255, 255, 22)
ROW_HEIGHT = 22
BANNER_TEXT = "Synthetic demo model \u2014 not for clinical use"
BANNER_STYLE = ("background: #f2c94c; color: #1b1b1b; font-weight: bold; padding: 5px; "
                "border-radius: 3px;")


def demo_banner(parent: QWidget) -> QLabel:
    """The yellow "synthetic demo model" banner (hidden until a synthetic model loads)."""
    banner = QLabel(BANNER_TEXT, parent)
    banner.setStyleSheet(BANNER_STYLE)
    banner.setWordWrap(True)
    banner.hide()
    return banner


class StatusLine(QWidget):
    """A one-line message with an indeterminate progress bar shown while busy."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 0)
        self.bar.setMaximumWidth(90)
        self.bar.setMaximumHeight(10)
        self.bar.setTextVisible(False)
        self.bar.hide()
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)

    def show_message(self, text: str, busy: bool = False, error: bool = False) -> None:
        """Show ``text``; ``busy`` adds the moving bar, ``error`` paints it red."""
        self.label.setText(text)
        self.label.setStyleSheet(ERROR_STYLE if error else MUTED_STYLE)
        self.bar.setVisible(busy)
        self.setVisible(bool(text) or busy)

    @property
    def busy(self) -> bool:
        """True while the busy bar is shown."""
        return not self.bar.isHidden()


def bar_color(value: float) -> QColor:
    """Bar colour from blue (0) to orange (1)."""
    t = min(1.0, max(0.0, value))
    return QColor(*(round(a + (b - a) * t) for a, b in zip(BAR_LOW.getRgb()[:3], BAR_HIGH.getRgb()[:3])))


class ScoreBarDelegate(QStyledItemDelegate):
    """Paints the probability in ``SCORE_ROLE`` as a bar with the number on top."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        value = index.data(SCORE_ROLE)
        if value is None:
            super().paint(painter, option, index)
            return
        value = min(1.0, max(0.0, float(value)))
        painter.save()
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight())
        inner = option.rect.adjusted(3, 5, -3, -5)
        text_width = option.fontMetrics.horizontalAdvance("0.00") + 6
        track = QRect(inner.left(), inner.top(), max(4, inner.width() - text_width), inner.height())
        painter.fillRect(track, TRACK)
        muted = bool(index.data(MUTED_ROLE))
        painter.fillRect(QRect(track.left(), track.top(), round(track.width() * value),
                               track.height()), MUTED if muted else bar_color(value))
        point = index.data(POINT_ROLE)
        if point is not None:
            x = track.left() + round(track.width() * min(1.0, max(0.0, float(point))))
            painter.fillRect(QRect(x - 1, track.top() - 3, 2, track.height() + 6), option.palette.text())
        painter.setPen(MUTED if muted else option.palette.text().color())
        painter.drawText(QRect(track.right() + 2, option.rect.top(), text_width, option.rect.height()),
                         int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight),
                         f"{value:.2f}")
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        hint = super().sizeHint(option, index)
        return QSize(max(hint.width(), 40), max(hint.height(), ROW_HEIGHT))
