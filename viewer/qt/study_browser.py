"""Study browser: Patient → Study → Series → View tree with thumbnails."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from viewer.model.study import Patient, Series, Study, StudyTree, View, format_age
from viewer.qt.image_source import to_qimage
from viewer.qt.phi import ANONYMOUS, MASK

THUMB_SIZE = 72
ROLE_KIND = Qt.ItemDataRole.UserRole
ROLE_ID = Qt.ItemDataRole.UserRole + 1


def patient_label(patient: Patient, hide_phi: bool) -> str:
    """Patient line of the tree; name and ID replaced when PHI is hidden."""
    name = patient.name.replace("^", " ").strip()
    who = ANONYMOUS if hide_phi else (f"{name} ({patient.patient_id})" if name else patient.patient_id)
    extra = " ".join(p for p in (patient.sex.strip(), format_age(patient.age)) if p)
    return f"{who}, {extra}" if extra else who


def study_label(study: Study, hide_phi: bool) -> str:
    """Study line: date, description, view count (accession masked when PHI is hidden)."""
    label = study.display_label
    if hide_phi and study.accession_number:
        label = label.replace(study.accession_number, MASK)
    return label


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

    def __init__(self, parent: QWidget | None = None) -> None:
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

    def set_studies(self, studies: StudyTree) -> None:
        """Rebuild the tree for a new scan result."""
        self._studies = studies
        self._rebuild()

    def clear(self) -> None:
        self._studies = None
        self._rebuild()

    def set_hide_phi(self, hide: bool) -> None:
        """Relabel patients/studies with identifiers masked or shown."""
        self._hide_phi = hide
        if self._studies is None:
            return
        for index, patient in enumerate(self._studies.patients):
            self.tree.topLevelItem(index).setText(0, patient_label(patient, hide))
        for uid, item in self._study_items.items():
            study = self._studies.study(uid)
            if study is not None:
                item.setText(0, study_label(study, hide))

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
        """Every row's text (for PHI checks)."""
        out: list[str] = []

        def walk(item: QTreeWidgetItem) -> None:
            out.append(item.text(0))
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
            p_item = QTreeWidgetItem([patient_label(patient, self._hide_phi)])
            p_item.setData(0, ROLE_KIND, "patient")
            self.tree.addTopLevelItem(p_item)
            for study in patient.studies:
                self._add_study(p_item, study)
            p_item.setExpanded(True)

    def _add_study(self, parent: QTreeWidgetItem, study: Study) -> None:
        s_item = QTreeWidgetItem([study_label(study, self._hide_phi)])
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
        v_item = QTreeWidgetItem([view.display_label])
        v_item.setData(0, ROLE_KIND, "view")
        v_item.setData(0, ROLE_ID, view.view_id)
        v_item.setData(0, ROLE_ID + 1, study.study_uid)
        v_item.setToolTip(0, str(view.path))
        parent.addChild(v_item)
        self._view_items[view.view_id] = v_item

    def _on_item(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        kind = item.data(0, ROLE_KIND)
        if kind in ("study", "series"):
            self.study_activated.emit(item.data(0, ROLE_ID))
        elif kind == "view":
            self.view_activated.emit(item.data(0, ROLE_ID + 1), item.data(0, ROLE_ID))
