"""Studies of the same patient, and which one is the prior of a study (no Qt).

Two studies belong to the same patient when they share a non-empty Patient ID
(DICOM) or the same subject folder (MIMIC-CXR-JPG layouts, where the scan sets
the patient id to the ``p1000xxxx`` folder name); `viewer.model.study.StudyTree`
already groups them under one `Patient`. When both studies carry a patient's
name it must match too (the same ID reused for another person is not a prior).
The prior of a study is the latest study of the same patient with an earlier
Study Date; studies without a date have no prior and are no prior.
"""
from __future__ import annotations

from viewer.model.study import Study, StudyTree, View


def _name(text: str) -> str:
    return " ".join(text.replace("^", " ").upper().split())


def _valid_date(study: Study) -> str:
    value = (study.date or "").strip()
    return value if len(value) == 8 and value.isdigit() else ""


def same_patient(a: Study, b: Study) -> bool:
    """True when both studies have the same non-empty patient id (and names, when both
    have one, agree)."""
    if not a.patient_id or a.patient_id != b.patient_id:
        return False
    name_a = _name(a.patient.name) if a.patient else ""
    name_b = _name(b.patient.name) if b.patient else ""
    return not (name_a and name_b and name_a != name_b)


def patient_studies(tree: StudyTree, study: Study) -> list[Study]:
    """Every study of ``study``'s patient in ``tree`` (itself included), oldest first;
    undated studies last."""
    found = [s for s in tree.studies() if s is study or same_patient(s, study)]
    return sorted(found, key=lambda s: (_valid_date(s) or "99999999", s.time, s.study_uid))


def find_prior(tree: StudyTree, study: Study) -> Study | None:
    """The latest study of the same patient dated before ``study``; None without one."""
    date = _valid_date(study)
    if not date:
        return None
    earlier = [s for s in patient_studies(tree, study)
               if s is not study and _valid_date(s) and _valid_date(s) < date]
    return earlier[-1] if earlier else None


def groups(tree: StudyTree) -> list[list[Study]]:
    """Studies grouped by patient (groups with more than one study only), oldest first."""
    seen: set[str] = set()
    out: list[list[Study]] = []
    for study in tree.studies():
        if study.study_uid in seen:
            continue
        group = patient_studies(tree, study)
        seen.update(s.study_uid for s in group)
        if len(group) > 1:
            out.append(group)
    return out


def frontal_view(study: Study) -> View | None:
    """The study's first frontal view (reading order), else its first view, else None."""
    views = study.views()
    return next((v for v in views if v.is_frontal), views[0] if views else None)
