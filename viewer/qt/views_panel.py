"""The central area: the image views of the open study side by side (reading order)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QStackedLayout, QWidget

from viewer.qt.image_view import ImageView

PLACEHOLDER = "Open a folder of DICOM or PNG/JPEG files\n(File ▸ Open Folder, Ctrl+O, or drop it here)"


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns): one row up to three views, then as square as possible."""
    if count <= 3:
        return 1, max(count, 1)
    cols = 1
    while cols * cols < count:
        cols += 1
    rows = (count + cols - 1) // cols
    return rows, cols


class ViewsPanel(QWidget):
    """Holds the `ImageView` widgets; shows a hint when no study is open."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.views: list[ImageView] = []
        self._grid_host = QWidget(self)
        self._grid = QGridLayout(self._grid_host)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(3)
        self.placeholder = QLabel(PLACEHOLDER, self)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: #8a8f98; font-size: 15px;")
        self._stack = QStackedLayout(self)
        self._stack.addWidget(self.placeholder)
        self._stack.addWidget(self._grid_host)
        self.setStyleSheet("background: #0b0c0e;")

    def set_views(self, views: list[ImageView]) -> None:
        """Replace the shown views (old widgets are deleted)."""
        self.clear()
        rows, cols = grid_shape(len(views))
        for index, view in enumerate(views):
            self._grid.addWidget(view, index // cols, index % cols)
        for c in range(cols):
            self._grid.setColumnStretch(c, 1)
        for r in range(rows):
            self._grid.setRowStretch(r, 1)
        self.views = list(views)
        self._stack.setCurrentIndex(1 if views else 0)

    def clear(self) -> None:
        """Remove and delete every view; show the placeholder."""
        for view in self.views:
            self._grid.removeWidget(view)
            view.setParent(None)
            view.deleteLater()
        self.views = []
        self._stack.setCurrentIndex(0)
