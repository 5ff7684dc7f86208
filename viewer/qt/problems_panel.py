"""The Problems panel: one row per file that could not be read or plugin that failed.

Rows keep what was reported; what is shown depends on Hide-PHI: a file row
then names the file by a neutral label ("file 3f9a02c1", stable within the
session) and its reason has every known identifier and the path masked.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from viewer.model.phi import Redactor, path_label, path_secrets

MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class ProblemEntry:
    """One reported problem: where (a path or 'plugin NAME'), why, and the file if any."""

    where: str
    reason: str
    path: Path | None = None


def shown_problem(entry: ProblemEntry, hide_phi: bool, redactor: Redactor) -> tuple[str, str]:
    """(where, reason) as displayed: identifiers masked while PHI is hidden."""
    reason = entry.reason if len(entry.reason) <= MAX_REASON_CHARS else \
        entry.reason[:MAX_REASON_CHARS] + "…"
    if not hide_phi:
        return entry.where, reason
    local = Redactor()
    if entry.path is not None:
        local.add_texts(path_secrets(entry.path))
    where = path_label(entry.path, True) if entry.path is not None else redactor.scrub(entry.where)
    return where, local.scrub(redactor.scrub(reason))


class ProblemsPanel(QWidget):
    """A two-column table (where, reason). Rows are never modal dialogs: reading goes on."""

    def __init__(self, parent: QWidget | None = None, redactor: Redactor | None = None) -> None:
        super().__init__(parent)
        self.entries: list[ProblemEntry] = []
        self._listed: set[ProblemEntry] = set()  # the same entries, for the duplicate check
        self._hide_phi = False
        self._redactor = redactor or Redactor()
        self.table = QTableWidget(0, 2, self)
        self.table.setHorizontalHeaderLabels(["File / source", "Reason"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 320)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.setMinimumHeight(40)
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

    def add(self, where: str, reason: str, path: str | Path | None = None) -> bool:
        """Append one problem row (``where`` = file path or 'plugin NAME' / 'viewer';
        ``path`` = the file concerned, masked while PHI is hidden). False when the same
        problem is listed already."""
        entry = ProblemEntry(where, reason, Path(path) if path is not None else None)
        if entry in self._listed:  # e.g. a thumbnail and then the opened view: listed once
            return False
        self._listed.add(entry)
        self.entries.append(entry)
        row = self.table.rowCount()
        self.table.insertRow(row)
        self._show_row(row, entry)
        self._update_summary()
        return True

    def set_hide_phi(self, hide: bool) -> None:
        """Re-show every row with identifiers masked or shown."""
        self._hide_phi = hide
        for row, entry in enumerate(self.entries):
            self._show_row(row, entry)

    def shown(self, entry: ProblemEntry) -> tuple[str, str]:
        """(where, reason) of ``entry`` as this panel displays it now."""
        return shown_problem(entry, self._hide_phi, self._redactor)

    def clear(self) -> None:
        """Remove every row."""
        self.entries.clear()
        self._listed.clear()
        self.table.setRowCount(0)
        self._update_summary()

    def count(self) -> int:
        """Number of rows."""
        return self.table.rowCount()

    def rows(self) -> list[tuple[str, str]]:
        """All rows as displayed, as (where, reason) tuples."""
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text())
                for r in range(self.table.rowCount())]

    def _show_row(self, row: int, entry: ProblemEntry) -> None:
        for col, text in enumerate(self.shown(entry)):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            item.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)
            self.table.setItem(row, col, item)

    def _update_summary(self) -> None:
        n = self.table.rowCount()
        self.summary.setText("No problems" if n == 0 else f"{n} problem{'s' if n != 1 else ''}")
