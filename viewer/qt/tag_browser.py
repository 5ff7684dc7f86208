"""DICOM tag browser: a filterable tree of one file's dataset, nested sequences included.

Reading and formatting happen in a worker (`viewer.qt.tag_rows`, safe per
element); the tree is then filled in chunks of `CHUNK_ROWS` rows per event-loop
turn, so a dataset with tens of thousands of elements never blocks the UI.
With Hide-PHI on, identifying values show as "***" and no file name appears.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QTreeView, QVBoxLayout, QWidget

from viewer.model.phi import Redactor, path_secrets
from viewer.qt.tag_rows import TagRow, collect_secrets, dataset_rows, shown_value, unreadable
from viewer.qt.workers import run_in_pool

log = logging.getLogger(__name__)

COLUMNS = ("Tag", "Keyword", "VR", "Value")
CHUNK_ROWS = 1500


def _read_rows(path: str | Path) -> list[TagRow]:
    """Headers of ``path`` as rows (worker side)."""
    ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    return dataset_rows(ds)


class TagBrowser(QWidget):
    """Tree of tags with a filter box (matches tag, keyword or value, keeps parents).

    ``filled`` fires when the whole tree is in the model.
    """

    filled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter by tag, keyword or value…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._on_filter)
        self.tree = QTreeView(self)
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.title = QLabel("No view selected", self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.tree)
        self._rows: list[TagRow] = []
        self._redactor = Redactor()
        self._hide_phi = False
        self._request = 0
        self._queue: list[tuple[QStandardItem, TagRow]] = []
        self._fill_timer = QTimer(self, singleShot=True, interval=0)
        self._fill_timer.timeout.connect(self._fill_chunk)

    # --- loading ----------------------------------------------------------
    def show_dataset(self, ds: Dataset, title: str = "", path: str | Path | None = None) -> None:
        """Show ``ds`` (formatted here; large trees are filled in chunks)."""
        self._request += 1
        self.show_rows(dataset_rows(ds), title, path)

    def show_rows(self, rows: list[TagRow], title: str = "", path: str | Path | None = None) -> None:
        """Show already formatted rows; ``path`` is masked in values while PHI is hidden."""
        self._rows = rows
        self._redactor = Redactor()
        collect_secrets(rows, self._redactor)
        if path is not None:
            self._redactor.add_texts(path_secrets(path))
        self.title.setText(title)
        self._refill()

    def load_file(self, path: str | Path, title: str = "") -> None:
        """Read ``path`` (headers only) and format it in a worker; show it when done.

        ``title`` must already be PHI-safe if PHI is hidden; the path itself is never shown.
        """
        self._request += 1
        request = self._request
        self.title.setText(f"{title}: loading tags…" if title else "Loading tags…")

        def done(rows: list[TagRow]) -> None:
            if request == self._request:
                self.show_rows(rows, title, path)

        def failed(exc: BaseException) -> None:
            if request == self._request:
                self.clear_rows()
                text = Redactor()
                text.add_texts(path_secrets(path))
                self.title.setText(f"{title or 'Tags'}: cannot read tags: {text.scrub(unreadable(exc))}")

        run_in_pool(lambda: _read_rows(path), done, failed)

    def clear_rows(self, title: str | None = None) -> None:
        """Empty the tree (and stop a fill in progress)."""
        self._request += 1
        self._rows = []
        self._queue.clear()
        self.model.removeRows(0, self.model.rowCount())
        if title is not None:
            self.title.setText(title)

    def set_hide_phi(self, hide: bool) -> None:
        """Mask identifying values ("***") or show them."""
        if hide != self._hide_phi:
            self._hide_phi = hide
            self._refill()

    def is_filling(self) -> bool:
        """True while rows are still being added."""
        return bool(self._queue)

    # --- reading back -----------------------------------------------------
    def visible_rows(self) -> list[tuple[str, ...]]:
        """All rows that pass the filter, depth-first (for tests and copy)."""
        out: list[tuple[str, ...]] = []

        def walk(parent: QModelIndex) -> None:
            for r in range(self.proxy.rowCount(parent)):
                out.append(tuple(self.proxy.index(r, c, parent).data() or "" for c in range(len(COLUMNS))))
                walk(self.proxy.index(r, 0, parent))

        walk(QModelIndex())
        return out

    # --- filling ----------------------------------------------------------
    def _refill(self) -> None:
        self._queue.clear()
        self.model.removeRows(0, self.model.rowCount())
        root = self.model.invisibleRootItem()
        self._queue = [(root, row) for row in reversed(self._rows)]
        self._fill_chunk()
        self.tree.resizeColumnToContents(0)
        self.tree.resizeColumnToContents(1)

    def _fill_chunk(self) -> None:
        """Append up to CHUNK_ROWS rows (depth-first), then yield to the event loop."""
        added = 0
        while self._queue and added < CHUNK_ROWS:
            parent, row = self._queue.pop()
            items = self._items(row)
            parent.appendRow(items)
            self._queue.extend((items[0], child) for child in reversed(row.children))
            added += 1
        if self._queue:
            self._fill_timer.start()
        else:
            self._on_filter(self.filter_edit.text())
            self.filled.emit()

    def _items(self, row: TagRow) -> list[QStandardItem]:
        value = shown_value(row, self._hide_phi, self._redactor)
        items = [QStandardItem(text) for text in (row.tag, row.keyword, row.vr, value)]
        for item in items:
            item.setEditable(False)
        return items

    def _on_filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text)
        if text and not self._queue:
            self.tree.expandAll()


class TagBrowserDialog(QDialog):
    """Non-modal window holding a `TagBrowser`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DICOM Tags")
        self.resize(760, 640)
        self.browser = TagBrowser(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.browser)
