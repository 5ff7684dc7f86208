"""Study browser: Patient → Study → Series → View tree with thumbnails."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from viewer.model.phi import Redactor, patient_label, path_label, study_label, view_label
from viewer.model.study import Series, Study, StudyTree, View
from viewer.qt.image_source import THUMB_SIZE, to_qimage
ROLE_KIND = Qt.ItemDataRole.UserRole
ROLE_ID = Qt.ItemDataRole.UserRole + 1

__all__ = ["StudyBrowser", "patient_label", "series_label", "study_label", "THUMB_SIZE"]


def series_label(series: Series) -> str:
    """Series line: modality, number and description."""
    parts = [series.modality, f"#{series.number}" if series.number is not None else "",
             series.description]
    return " ".join(p for p in parts if p) or "Series"


class StudyBrowser(QWidget):
    """Tree of the scanned folder. Emits ``study_activated(study_uid)`` and
    ``view_activated(study_uid, view_id)`` when the user picks a row."""

    study_activated = Signal(str)
    view_activated = Signal(str, str)

    def __init__(self, parent: QWidget | None = None, redactor: Redactor | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.tree.setUniformRowHeights(False)
        self.tree.itemClicked.connect(self._on_item)
        self.tree.itemActivated.connect(self._on_item)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self._studies: StudyTree | None = None
        self._view_items: dict[str, QTreeWidgetItem] = {}
        self._study_items: dict[str, QTreeWidgetItem] = {}
        self._hide_phi = False
        self._redactor = redactor or Redactor()

    def set_studies(self, studies: StudyTree) -> None:
        """Rebuild the tree for a new scan result."""
        self._studies = studies
        self._rebuild()

    def clear(self) -> None:
        self._studies = None
        self._rebuild()

    def set_hide_phi(self, hide: bool) -> None:
        """Relabel every row (and tooltip) with identifiers masked or shown."""
        self._hide_phi = hide
        self._relabel()

    def set_thumbnail(self, view_id: str, thumb: np.ndarray) -> None:
        """Show a small uint8 rendering as the view row's icon."""
        item = self._view_items.get(view_id)
        if item is not None:
            item.setIcon(0, QIcon(QPixmap.fromImage(to_qimage(thumb))))

    def select_study(self, study_uid: str) -> None:
        """Highlight a study's row (no signal)."""
        item = self._study_items.get(study_uid)
        if item is not None:
            self.tree.blockSignals(True)
            self.tree.setCurrentItem(item)
            self.tree.blockSignals(False)

    def all_texts(self) -> list[str]:
        """Every row's text and tooltip (for PHI checks)."""
        out: list[str] = []

        def walk(item: QTreeWidgetItem) -> None:
            out.extend((item.text(0), item.toolTip(0)))
            for i in range(item.childCount()):
                walk(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i))
        return out

    def _rebuild(self) -> None:
        self.tree.clear()
        self._view_items.clear()
        self._study_items.clear()
        if self._studies is None:
            return
        for patient in self._studies.patients:
            p_item = QTreeWidgetItem([""])
            p_item.setData(0, ROLE_KIND, "patient")
            self.tree.addTopLevelItem(p_item)
            for study in patient.studies:
                self._add_study(p_item, study)
            p_item.setExpanded(True)
        self._relabel()

    def _add_study(self, parent: QTreeWidgetItem, study: Study) -> None:
        s_item = QTreeWidgetItem([""])
        s_item.setData(0, ROLE_KIND, "study")
        s_item.setData(0, ROLE_ID, study.study_uid)
        parent.addChild(s_item)
        self._study_items[study.study_uid] = s_item
        for series in study.series:
            r_item = QTreeWidgetItem([series_label(series)])
            r_item.setData(0, ROLE_KIND, "series")
            r_item.setData(0, ROLE_ID, study.study_uid)
            s_item.addChild(r_item)
            for view in series.views:
                self._add_view(r_item, study, view)
            r_item.setExpanded(True)
        s_item.setExpanded(True)

    def _add_view(self, parent: QTreeWidgetItem, study: Study, view: View) -> None:
        v_item = QTreeWidgetItem([""])
        v_item.setData(0, ROLE_KIND, "view")
        v_item.setData(0, ROLE_ID, view.view_id)
        v_item.setData(0, ROLE_ID + 1, study.study_uid)
        parent.addChild(v_item)
        self._view_items[view.view_id] = v_item

    def _relabel(self) -> None:
        """Set every row's text and tooltip from the data and the Hide-PHI flag."""
        if self._studies is None:
            return
        hide = self._hide_phi
        for index, patient in enumerate(self._studies.patients):
            self.tree.topLevelItem(index).setText(0, patient_label(patient, hide))
            for number, study in enumerate(patient.studies, start=1):
                item = self._study_items.get(study.study_uid)
                if item is not None:
                    text = study_label(study, hide, number)
                    item.setText(0, self._redactor.scrub(text) if hide else text)
                self._relabel_views(study)

    def _relabel_views(self, study: Study) -> None:
        hide = self._hide_phi
        for number, view in enumerate(study.views(), start=1):
            item = self._view_items.get(view.view_id)
            if item is None:
                continue
            item.setText(0, view_label(view, hide, number))
            size = f"{view.columns} × {view.rows}" if view.rows and view.columns else ""
            tip = ", ".join(p for p in (view_label(view, True, number), size) if p)
            item.setToolTip(0, tip if hide else path_label(view.path, False))

    def _on_item(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        kind = item.data(0, ROLE_KIND)
        if kind in ("study", "series"):
            self.study_activated.emit(item.data(0, ROLE_ID))
        elif kind == "view":
            self.view_activated.emit(item.data(0, ROLE_ID + 1), item.data(0, ROLE_ID))
