"""Change panel: each finding's score on the prior and the open study, and what changed.

Shown while the viewer compares the open study with its prior ("Compare with prior").
Columns: finding, prior score, current score, change (current - prior), the threshold
(the calibrated operating point, or 0.5 labelled uncalibrated) and the crossing:
"new" (below the threshold then, above now), "resolved" (above then, below now) or
"still present". Without a prior the table is hidden and a line says how to get one.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QHeaderView, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from plugins.cxrclip_findings.prior_change import NEW, RESOLVED, FindingChange

COLUMNS = ("Finding", "Prior", "Current", "\u0394", "Threshold", "Change")
DELTA_COLUMN, CHANGE_COLUMN = 3, 5
NO_PRIOR = ("No prior study shown. Open a study that has an earlier study of the same patient "
            "in the opened folders and choose View \u25b8 Compare with prior.")
CROSSING_COLOURS = {NEW: "#e8710a", RESOLVED: "#1e8e3e"}


class ChangePanel(QWidget):
    """Per-finding change between the open study and its prior (see the module docstring)."""

    def __init__(self, controller: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.title = QLabel(NO_PRIOR, self)
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.note = QLabel("", self)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #9aa0a6")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.note)
        self.tree.hide()
        prior = controller.prior
        prior.changed.connect(lambda _h: self.refresh())
        prior.findings_ready.connect(lambda _f: self.refresh())
        prior.failed.connect(lambda msg: self.note.setText(f"Prior not scored: {msg}"))
        controller.findings_ready.connect(lambda _f: self.refresh())
        controller.study_changed.connect(lambda *_a: self.refresh())

    def rows(self) -> list[tuple[str, ...]]:
        """The table's text, row by row (for tests and exports)."""
        return [tuple(self.tree.topLevelItem(i).text(c) for c in range(len(COLUMNS)))
                for i in range(self.tree.topLevelItemCount())]

    def refresh(self) -> None:
        """Rebuild from the controller's results of both studies."""
        prior = self.controller.prior
        self.tree.clear()
        if prior.handle is None or self.controller.study is None:
            self.title.setText(NO_PRIOR)
            self.tree.hide()
            self.note.clear()
            return
        self.title.setText(self._title(prior.handle))
        self.tree.show()
        changes = prior.changes()
        for change in changes:
            self.tree.addTopLevelItem(_row(change))
        self.note.setText(self._note(changes))

    def _title(self, handle: Any) -> str:
        hidden = bool(getattr(self.controller.host, "phi_hidden", False))
        date = "" if hidden else _format_date(getattr(getattr(handle, "study", None), "date", ""))
        return f"Change since the prior study{f' of {date}' if date else ''} (current \u2212 prior)"

    def _note(self, changes: list[FindingChange]) -> str:
        if not changes:
            return "Scoring both studies\u2026"
        if any(not c.calibrated for c in changes):
            text = ("Uncalibrated model: \u201cnew\u201d/\u201cresolved\u201d use 0.5 on the raw "
                    "probability, which is no tested decision point.")
        else:
            text = "Crossings use each finding's calibrated operating point."
        if any(c.out_of_distribution for c in changes):
            text += " Grey rows: a view of either study is out of distribution."
        return text


def _row(change: FindingChange) -> QTreeWidgetItem:
    item = QTreeWidgetItem([change.finding, f"{change.prior:.2f}", f"{change.current:.2f}",
                            f"{change.delta:+.2f}", change.threshold_label, change.crossing])
    for column in range(1, len(COLUMNS)):
        item.setTextAlignment(column, Qt.AlignmentFlag.AlignCenter)
    colour = CROSSING_COLOURS.get(change.crossing)
    if colour:
        bold = QFont()
        bold.setBold(True)
        item.setFont(CHANGE_COLUMN, bold)
        item.setForeground(CHANGE_COLUMN, QBrush(QColor(colour)))
    if change.out_of_distribution:
        for column in range(len(COLUMNS)):
            item.setForeground(column, QBrush(QColor("#80868b")))
    item.setToolTip(DELTA_COLUMN, f"{change.finding}: {change.prior:.3f} on the prior, "
                                  f"{change.current:.3f} now")
    return item


def _format_date(value: str) -> str:
    value = (value or "").strip()
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else ""
