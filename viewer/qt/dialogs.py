"""Small dialogs: keyboard shortcuts (built from the one action table) and About."""
from __future__ import annotations

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from viewer.qt.shortcuts import ACTIONS, MOUSE_GESTURES


def shortcut_rows(extra: list[tuple[str, str, str]] | None = None) -> list[tuple[str, str, str]]:
    """(menu, command, keys) for every action with a shortcut, mouse gestures, plugin actions."""
    rows = [(a.menu, a.text.replace("…", ""), a.shortcut) for a in ACTIONS if a.shortcut]
    rows += [("Mouse", what, gesture) for gesture, what in MOUSE_GESTURES]
    rows += list(extra or [])
    return rows


class ShortcutsDialog(QDialog):
    """A read-only table of every shortcut."""

    def __init__(self, extra: list[tuple[str, str, str]] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard Shortcuts")
        self.resize(620, 640)
        rows = shortcut_rows(extra)
        self.table = QTableWidget(len(rows), 3, self)
        self.table.setHorizontalHeaderLabels(["Menu", "Command", "Keys"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(2)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
