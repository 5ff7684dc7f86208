"""The Problems panel: one row per file that could not be read or plugin that failed."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)


class ProblemsPanel(QWidget):
    """A two-column table (where, reason). Rows are never modal dialogs: reading goes on."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, 2, self)
        self.table.setHorizontalHeaderLabels(["File / source", "Reason"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 320)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.summary = QLabel("No problems", self)
        clear = QPushButton("Clear", self)
        clear.clicked.connect(self.clear)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.table)

    def add(self, where: str, reason: str) -> None:
        """Append one problem row (``where`` = file path or 'plugin NAME' / 'viewer')."""
        row = self.table.rowCount()
        self.table.insertRow(row)
        for col, text in enumerate((where, reason)):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            item.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)
            self.table.setItem(row, col, item)
        self._update_summary()

    def clear(self) -> None:
        """Remove every row."""
        self.table.setRowCount(0)
        self._update_summary()

    def count(self) -> int:
        """Number of rows."""
        return self.table.rowCount()

    def rows(self) -> list[tuple[str, str]]:
        """All rows as (where, reason) tuples."""
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text())
                for r in range(self.table.rowCount())]

    def _update_summary(self) -> None:
        n = self.table.rowCount()
        self.summary.setText("No problems" if n == 0 else f"{n} problem{'s' if n != 1 else ''}")
