"""The "Measurements" dock: every measurement of the open studies, with Delete and Export.

Rows show the kind, the view (its neutral label, "PA" or "prior PA") and the
result text; picking a row selects the measurement (and its view). The panel
subscribes to the `MeasurementStore`, so measurements drawn, moved or deleted
anywhere show up here at once.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from viewer.model.measurement_store import MeasurementStore
from viewer.model.measurements import Measurement

log = logging.getLogger(__name__)
ID_ROLE = Qt.ItemDataRole.UserRole


class MeasurementsPanel(QWidget):
    """List of measurements; ``select_view(view_id)`` is called when a row is picked."""

    def __init__(self, store: MeasurementStore, select_view: Callable[[str], None],
                 report: Callable[[str, str], None], parent: QWidget | None = None,
                 write_sr: Callable[[Path, bool], Path] | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MeasurementsPanel")
        self.store, self._select_view, self._report = store, select_view, report
        self._write_sr = write_sr
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Measurement", "View", "Value"])
        self.tree.setRootIsDecorated(False)
        self.tree.setColumnWidth(0, 120)
        self.tree.setColumnWidth(1, 70)
        self.tree.itemSelectionChanged.connect(self._on_pick)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.clicked.connect(store.remove_selected)
        self.export_button = QPushButton("Export JSON…", self)
        self.export_button.clicked.connect(self.export_dialog)
        self.sr_button = QPushButton("Export SR…", self)
        self.sr_button.setToolTip("DICOM SR measurement report (TID 1500) of the measurements on DICOM views")
        self.sr_button.clicked.connect(self.sr_dialog)
        self.sr_button.setVisible(write_sr is not None)
        self.include_ids = QCheckBox("Include identifiers", self)
        buttons = QHBoxLayout()
        for widget in (self.delete_button, self.export_button):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        more = QHBoxLayout()  # two short rows keep the dock narrow
        more.addWidget(self.sr_button)
        more.addWidget(self.include_ids)
        more.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree)
        layout.addLayout(buttons)
        layout.addLayout(more)
        store.changed.connect(self._on_changed)
        store.selection_changed.connect(self._on_selected)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild every row from the store."""
        self.tree.blockSignals(True)
        self.tree.clear()
        for m in self.store.all():
            self.tree.addTopLevelItem(self._item(m))
        self.tree.blockSignals(False)
        self._on_selected(self.store.selected_id)
        self._update_buttons()

    def rows(self) -> list[tuple[str, str, str]]:
        """(kind, view, value) of every row as shown."""
        return [tuple(self.tree.topLevelItem(i).text(c) for c in range(3))
                for i in range(self.tree.topLevelItemCount())]

    def _item(self, m: Measurement) -> QTreeWidgetItem:
        item = QTreeWidgetItem([m.name, self.store.context(m.view_id).label, self.store.result(m).text])
        item.setData(0, ID_ROLE, m.measurement_id)
        item.setToolTip(2, item.text(2))
        return item

    def _find(self, measurement_id: str | None) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, ID_ROLE) == measurement_id:
                return item
        return None

    def _on_changed(self, action: str, m: Measurement) -> None:
        item = self._find(m.measurement_id)
        if action == "removed" and item is not None:
            self.tree.blockSignals(True)  # removing a row moves the selection: not a pick
            self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))
            self.tree.blockSignals(False)
        elif action == "added" or item is None:
            self.tree.addTopLevelItem(self._item(m))
        else:
            item.setText(2, self.store.result(m).text)
            item.setToolTip(2, item.text(2))
        self._update_buttons()

    def _on_selected(self, measurement_id: str | None) -> None:
        item = self._find(measurement_id)
        self.tree.blockSignals(True)
        self.tree.clearSelection()
        if item is not None:
            item.setSelected(True)
            self.tree.scrollToItem(item)
        self.tree.blockSignals(False)
        self._update_buttons()

    def _on_pick(self) -> None:
        items = self.tree.selectedItems()
        measurement_id = items[0].data(0, ID_ROLE) if items else None
        m = self.store.get(measurement_id) if measurement_id else None
        if m is not None:
            self._select_view(m.view_id)
        self.store.select(m.measurement_id if m else None)

    def _update_buttons(self) -> None:
        self.delete_button.setEnabled(self.store.selected_id is not None)
        self.export_button.setEnabled(len(self.store) > 0)
        self.sr_button.setEnabled(len(self.store) > 0)

    def export_dialog(self) -> None:
        """Ask for a file name and write the JSON export."""
        path, _ = QFileDialog.getSaveFileName(self, "Export Measurements", "measurements.json",
                                              "JSON (*.json)")
        if path:
            self.export(path)

    def export(self, path: str | Path) -> Path | None:
        """Write the measurements to ``path`` (identifiers only when the box is ticked)."""
        try:
            return self.store.write_json(path, self.include_ids.isChecked())
        except OSError as exc:
            log.warning("measurement export to %s failed", path, exc_info=True)
            self._report("export measurements", f"cannot write the file: {exc.strerror or exc}")
            return None

    def sr_dialog(self) -> None:
        """Ask for a file name and write the DICOM SR in a worker."""
        path, _ = QFileDialog.getSaveFileName(self, "Export Measurements as DICOM SR",
                                              "measurements_sr.dcm", "DICOM (*.dcm)")
        if path:
            self.export_sr(path)

    def export_sr(self, path: str | Path, on_done: Callable[[Path], None] | None = None) -> None:
        """Write the SR (identifiers only when the box is ticked) off the UI thread; a failure
        becomes a Problems row."""
        from viewer.qt.workers import run_in_pool

        if self._write_sr is None:
            return
        write, include = self._write_sr, self.include_ids.isChecked()

        def failed(exc: BaseException) -> None:
            log.warning("measurement SR export failed", exc_info=exc)
            self._report("export measurements as DICOM SR", f"{type(exc).__name__}: {exc}")

        run_in_pool(lambda: write(Path(path), include), on_done or (lambda _p: None), failed)
