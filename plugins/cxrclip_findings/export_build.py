"""Collect the export data (`ExportContent`) from the viewer's study and the engine's results.

Pure functions: they read attributes of the viewer's `Study`/`View` and of the
engine's `FindingScore`/`PromptScore`, so tests can pass simple objects.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from plugins.cxrclip_findings.contradictions import find_contradictions, split_sentences
from plugins.cxrclip_findings.export_data import (
    ExportContent, ModelInfo, PatientInfo, ScoreEntry, StudyRef, ViewOOD, ViewRef, ViewScore)
from plugins.cxrclip_findings.study_state import study_key

log = logging.getLogger(__name__)


def view_ref(view: Any, sop_class_uid: str = "") -> ViewRef:
    """A `ViewRef` from a viewer `View` (DICOM views are named by their SOP Instance UID)."""
    dicom = getattr(view, "source", "dicom") == "dicom"
    return ViewRef(view_id=view.view_id, label=getattr(view, "display_label", ""),
                   modality=view.modality, view_position=view.view_position,
                   laterality=view.laterality, source="dicom" if dicom else "image",
                   sop_class_uid=sop_class_uid, sop_instance_uid=view.view_id if dicom else "",
                   series_instance_uid=view.series_uid if dicom else "",
                   file_name=Path(view.path).name)


def study_ref(study: Any, views: Sequence[Any], sop_classes: dict[str, str] | None = None
              ) -> StudyRef:
    """A `StudyRef` from a viewer `Study` and its views (patient details from `Study.patient`)."""
    patient = getattr(study, "patient", None)
    info = PatientInfo(
        name=str(getattr(patient, "name", "") or ""),
        patient_id=str(getattr(patient, "patient_id", "") or getattr(study, "patient_id", "")),
        birth_date=str(getattr(patient, "birth_date", "") or ""),
        sex=str(getattr(patient, "sex", "") or ""), age=str(getattr(patient, "age", "") or ""))
    classes = sop_classes or {}
    return StudyRef(study_instance_uid=study.study_uid,
                    views=tuple(view_ref(v, classes.get(v.view_id, "")) for v in views),
                    study_date=getattr(study, "date", ""),
                    study_description=getattr(study, "description", ""),
                    accession_number=getattr(study, "accession_number", ""), patient=info)


def score_entries(scores: Iterable[Any]) -> tuple[ScoreEntry, ...]:
    """`ScoreEntry`s from engine `FindingScore` or `PromptScore` objects."""
    out = []
    for s in scores:
        name = getattr(s, "finding", None) or getattr(s, "prompt", "")
        views = tuple(ViewScore(v.view_id, float(v.probability), float(v.similarity))
                      for v in getattr(s, "views", ()))
        raw = getattr(s, "raw_probability", None)
        positive = getattr(s, "positive", None)
        point = getattr(s, "operating_point", None)
        out.append(ScoreEntry(name, float(s.probability), float(s.similarity),
                              getattr(s, "negative", "") or "", views,
                              None if raw is None else float(raw), bool(getattr(s, "calibrated", False)),
                              None if positive is None else bool(positive),
                              None if point is None else float(point), bool(getattr(s, "unfamiliar", False))))
    return tuple(out)


def ood_verdicts(findings: Iterable[Any]) -> tuple[ViewOOD, ...]:
    """The views' out-of-distribution verdicts carried by the engine's findings (the same on each)."""
    for finding in findings:
        return tuple(getattr(finding, "ood", ()))
    return ()


def draft_contradictions(draft: str) -> tuple[str, ...]:
    """Readable lines for the contradictions of the draft (for the export)."""
    sentences = split_sentences(draft)
    return tuple(f"{sentences[c.first]!r} / {sentences[c.second]!r}: {c.reason}"
                 for c in find_contradictions(sentences))


def export_content(study: Any, views: Sequence[Any], model: ModelInfo, findings: Iterable[Any],
                   prompts: Iterable[Any], draft: str,
                   sop_classes: dict[str, str] | None = None) -> ExportContent:
    """Everything one export holds, ready for `export_json` / `export_sr`."""
    findings = list(findings)
    return ExportContent(study_ref(study, views, sop_classes), model, score_entries(findings),
                         score_entries(prompts), draft, draft_contradictions(draft), ood_verdicts(findings))


def read_sop_classes(views: Sequence[Any]) -> dict[str, str]:
    """SOP Class UID of each DICOM view, read from its header (PNG/JPEG views are skipped;
    an unreadable header leaves that view out)."""
    import pydicom

    out = {}
    for view in views:
        if getattr(view, "source", "dicom") != "dicom":
            continue
        try:
            ds = pydicom.dcmread(view.path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        except (OSError, ValueError) as exc:
            log.info("SOP Class UID of %s unreadable: %s", view.path, exc)
            continue
        uid = getattr(ds, "SOPClassUID", "") or getattr(
            getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "")
        if uid:
            out[view.view_id] = str(uid)
    return out


def default_export_stem(study: Any, kind: str) -> str:
    """A file name stem that differs per study and names no patient:
    ``cxrclip_<study date>_<short study key>_<kind>`` (key = hash of the StudyInstanceUID)."""
    date = re.sub(r"[^0-9]", "", str(getattr(study, "date", "") or "")) or "nodate"
    return f"cxrclip_{date}_{study_key(str(study.study_uid))}_{kind}"
