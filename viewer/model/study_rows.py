"""Rows of the study list: one per study, as shown, with Hide-PHI applied (no Qt).

Columns: patient name, patient ID, study date, description, modalities, views
(e.g. "PA, LL"), problems (files of the study that could not be shown). While
PHI is hidden the name reads "Anonymous", ID and date are empty and any known
identifier in the description is masked (`viewer.model.phi`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from viewer.model.phi import ANONYMOUS, Redactor, format_date
from viewer.model.study import Study, StudyTree

COLUMNS = ("Patient", "ID", "Date", "Description", "Modality", "Views", "Problems")


@dataclass(frozen=True)
class StudyRow:
    """One study as listed; ``sort_date`` sorts even while the shown date is hidden."""

    study_uid: str
    patient: str
    patient_id: str
    date: str
    description: str
    modality: str
    views: str
    problems: int
    sort_date: str

    def cells(self) -> tuple[str, ...]:
        """The texts of `COLUMNS`, in order."""
        return (self.patient, self.patient_id, self.date, self.description, self.modality,
                self.views, str(self.problems) if self.problems else "")


def study_row(study: Study, hide_phi: bool, redactor: Redactor, problems: int = 0) -> StudyRow:
    """The list row of ``study``."""
    patient = study.patient
    name = (patient.name.replace("^", " ").strip() if patient else "") or study.patient_id
    views = study.views()
    modalities = sorted({v.modality for v in views if v.modality})
    description = study.description.strip()
    if hide_phi:
        name, patient_id, description = ANONYMOUS, "", redactor.scrub(description)
    else:
        patient_id = study.patient_id
    labels = ", ".join(v.position_label or "?" for v in views)
    return StudyRow(study.study_uid, name, patient_id, format_date(study.date, hide_phi),
                    description, "/".join(modalities), labels, problems, study.date or "")


def study_rows(tree: StudyTree, hide_phi: bool, redactor: Redactor,
               problems_of: Callable[[Study], int] = lambda _s: 0) -> list[StudyRow]:
    """Rows of every study in ``tree`` (tree order)."""
    return [study_row(s, hide_phi, redactor, problems_of(s)) for s in tree.studies()]
