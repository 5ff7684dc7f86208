"""The "Study List" dock: a sortable, filterable table of the opened studies.

One row per study (`viewer.model.study_rows`): patient, ID, date, description,
modality, views, problems; Hide-PHI applies to what is shown, and the filter
only searches what is shown. Double-click or Enter opens a study
(``study_activated(study_uid)``); ``visible_order()`` gives the studies in the
table's current sorting for next/previous study.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QKeyEvent, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QLineEdit, QTableView, QVBoxLayout, QWidget

from viewer.model.phi import Redactor
from viewer.model.study import Study, StudyTree
from viewer.model.study_rows import COLUMNS, StudyRow, study_rows

UID_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
DATE_COLUMN, PROBLEMS_COLUMN = COLUMNS.index("Date"), COLUMNS.index("Problems")


class _Table(QTableView):
    activated_row = Signal(QModelIndex)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.activated_row.emit(self.currentIndex())
            return
        super().keyPressEvent(event)


class StudyList(QWidget):
    """Table of studies with a filter line; emits ``study_activated(study_uid)``."""

    study_activated = Signal(str)

    def __init__(self, redactor: Redactor, problems_of: Callable[[Study], int] = lambda _s: 0,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("StudyList")
        self._redactor, self._problems_of = redactor, problems_of
        self._tree: StudyTree | None = None
        self._hide_phi = False
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter studies…")
        self.filter.setClearButtonEnabled(True)
        self.items = QStandardItemModel(0, len(COLUMNS), self)
        self.items.setHorizontalHeaderLabels(list(COLUMNS))
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.items)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setSortRole(SORT_ROLE)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = _Table(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(DATE_COLUMN, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(self._activate)
        self.table.activated_row.connect(self._activate)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.filter)
        layout.addWidget(self.table)

    def set_studies(self, tree: StudyTree | None) -> None:
        self._tree = tree
        self.refresh()

    def set_hide_phi(self, hide: bool) -> None:
        self._hide_phi = hide
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the rows (after a scan, a Hide-PHI switch or new problems)."""
        self.items.removeRows(0, self.items.rowCount())
        if self._tree is None:
            return
        for row in study_rows(self._tree, self._hide_phi, self._redactor, self._problems_of):
            self.items.appendRow(self._cells(row))
        self.table.resizeColumnsToContents()

    @staticmethod
    def _cells(row: StudyRow) -> list[QStandardItem]:
        cells = []
        for column, text in enumerate(row.cells()):
            item = QStandardItem(text)
            item.setData(row.study_uid, UID_ROLE)
            sort_key = {DATE_COLUMN: row.sort_date, PROBLEMS_COLUMN: row.problems}.get(column, text.lower())
            item.setData(sort_key, SORT_ROLE)
            cells.append(item)
        return cells

    def rows(self) -> list[tuple[str, ...]]:
        """The visible rows' texts, in the shown (sorted, filtered) order."""
        return [tuple(self.proxy.index(r, c).data() for c in range(len(COLUMNS)))
                for r in range(self.proxy.rowCount())]

    def visible_order(self) -> list[str]:
        """Study UIDs of the visible rows, top to bottom."""
        return [self.proxy.index(r, 0).data(UID_ROLE) for r in range(self.proxy.rowCount())]

    def select_study(self, study_uid: str) -> None:
        """Highlight the row of ``study_uid`` (no signal)."""
        for r in range(self.proxy.rowCount()):
            if self.proxy.index(r, 0).data(UID_ROLE) == study_uid:
                self.table.blockSignals(True)
                self.table.selectRow(r)
                self.table.blockSignals(False)
                return

    def _activate(self, index: QModelIndex) -> None:
        uid = index.data(UID_ROLE)
        if uid:
            self.study_activated.emit(uid)
