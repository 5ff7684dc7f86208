"""DICOM tag browser: a filterable tree of one file's dataset, nested sequences included."""
from __future__ import annotations

import logging
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QTreeView, QVBoxLayout, QWidget

from viewer.qt.phi import MASK, PHI_KEYWORDS
from viewer.qt.workers import run_in_pool

log = logging.getLogger(__name__)

COLUMNS = ("Tag", "Keyword", "VR", "Value")
MAX_VALUE_CHARS = 200


def _value_text(elem: pydicom.DataElement, hide_phi: bool) -> str:
    if hide_phi and elem.keyword in PHI_KEYWORDS:
        return MASK
    if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or elem.tag == 0x7FE00010:
        value = elem.value
        size = len(value) if isinstance(value, (bytes, bytearray)) else "?"
        return f"<binary, {size} bytes>"
    text = str(elem.value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def _row(elem: pydicom.DataElement, hide_phi: bool) -> list[QStandardItem]:
    tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
    value = "" if elem.VR == "SQ" else _value_text(elem, hide_phi)
    items = [QStandardItem(t) for t in (tag, elem.keyword or elem.name, elem.VR, value)]
    for item in items:
        item.setEditable(False)
    return items


def fill_model(model: QStandardItemModel, ds: Dataset, hide_phi: bool) -> None:
    """Replace the model's rows with ``ds`` (file meta first), recursing into sequences."""
    model.removeRows(0, model.rowCount())
    root = model.invisibleRootItem()
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _add_dataset(root, meta, hide_phi)
    _add_dataset(root, ds, hide_phi)


def _add_dataset(parent: QStandardItem, ds: Dataset, hide_phi: bool) -> None:
    for elem in ds:
        row = _row(elem, hide_phi)
        parent.appendRow(row)
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value):
                label = [QStandardItem(t) for t in ("", f"Item {index + 1}", "", "")]
                for cell in label:
                    cell.setEditable(False)
                row[0].appendRow(label)
                _add_dataset(label[0], item, hide_phi)


class TagBrowser(QWidget):
    """Tree of tags with a filter box (matches tag, keyword or value, keeps parents)."""

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
        self._dataset: Dataset | None = None
        self._hide_phi = False
        self._request = 0

    def show_dataset(self, ds: Dataset, title: str = "") -> None:
        """Show ``ds`` now (UI thread)."""
        self._dataset = ds
        self.title.setText(title)
        self._refill()

    def load_file(self, path: str | Path, title: str = "") -> None:
        """Read ``path`` (headers only) in a worker and show it when done."""
        self._request += 1
        request = self._request
        self.title.setText(f"Loading {Path(path).name}…")

        def done(ds: Dataset) -> None:
            if request == self._request:
                self.show_dataset(ds, title)

        def failed(exc: BaseException) -> None:
            if request == self._request:
                self.title.setText(f"Cannot read tags of {Path(path).name}: {exc}")

        run_in_pool(lambda: pydicom.dcmread(str(path), stop_before_pixels=True, force=True),
                    done, failed)

    def set_hide_phi(self, hide: bool) -> None:
        """Mask identifying values ("***") or show them."""
        if hide != self._hide_phi:
            self._hide_phi = hide
            self._refill()

    def visible_rows(self) -> list[tuple[str, ...]]:
        """All rows that pass the filter, depth-first (for tests and copy)."""
        out: list[tuple[str, ...]] = []

        def walk(parent) -> None:
            for r in range(self.proxy.rowCount(parent)):
                out.append(tuple(self.proxy.index(r, c, parent).data() or "" for c in range(len(COLUMNS))))
                walk(self.proxy.index(r, 0, parent))

        from PySide6.QtCore import QModelIndex
        walk(QModelIndex())
        return out

    def _refill(self) -> None:
        if self._dataset is not None:
            fill_model(self.model, self._dataset, self._hide_phi)
            self.tree.resizeColumnToContents(0)
            self.tree.resizeColumnToContents(1)
            self._on_filter(self.filter_edit.text())

    def _on_filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text)
        if text:
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
