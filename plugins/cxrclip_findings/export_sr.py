"""Export the results as a DICOM Comprehensive 3D SR (highdicom) that other viewers can show.

Content tree (relationship in brackets; codes in sr_codes.py)::

    CONTAINER Diagnostic imaging report (LN 18748-4)
      [CONTAINS] TEXT Algorithm Name (DCM 111001)          model name
      [CONTAINS] TEXT Algorithm Version (DCM 111003)       model id
      [CONTAINS] TEXT Intended use (99CXRCLIP)             from the model card
      [CONTAINS] TEXT Calibration status (99CXRCLIP)       calibrated / uncalibrated
      [CONTAINS] TEXT Comment (DCM 121106)                 "Synthetic demo model ..." if so
      [CONTAINS] TEXT Outside the model's experience (99CXRCLIP)   one per out-of-distribution view
         [INFERRED FROM] IMAGE Source -> that view   (its findings' presence is then Undetermined)
      [CONTAINS] CONTAINER Zero-shot findings (99CXRCLIP)
         [CONTAINS] CODE Finding (DCM 121071) = SNOMED CT / DCM / private finding code
            [HAS PROPERTIES] CODE Presence of property (DCM 121052) = Present | Absent
                             (against the operating point) | Presence Undetermined (uncalibrated)
            [HAS PROPERTIES] NUM CAD Operating Point (DCM 111071)   only when calibrated
            [HAS PROPERTIES] NUM Probability (DCM 122157), UCUM "1"
            [HAS PROPERTIES] NUM Cosine similarity (99CXRCLIP)
            [HAS PROPERTIES] NUM Probability  (one per view)
               [INFERRED FROM] IMAGE Source (SCT 260753009) -> the view's SOP instance
      [CONTAINS] CONTAINER Prompt scores (99CXRCLIP)
         [CONTAINS] TEXT Prompt = text, with the same NUM children
            and [HAS PROPERTIES] TEXT Negative prompt
      [CONTAINS] TEXT Draft report (99CXRCLIP)
         [HAS PROPERTIES] TEXT Draft contradiction   one per flagged pair
      [CONTAINS] CONTAINER Image Library (DCM 111028)
         [CONTAINS] IMAGE Source -> each DICOM view

Identifiers: with ``include_identifiers`` the SR copies patient and study
attributes from the images (so a PACS files it with the study). Without, it is
de-identified following the Basic Application Level Confidentiality Profile
(PS3.15 Annex E) with the Retain UIDs Option: patient name, ID, birth date,
sex, accession number, study ID, referring physician, study date and time are
empty (type 2, present), content date/time get a dummy value (type 1), the
Study/Series/SOP Instance UIDs of the images are kept (the SR must reference
them; the JSON keeps them too), and the SR records the method
(PatientIdentityRemoved, DeidentificationMethod and its code sequence).
"""
from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import highdicom as hd
from highdicom.sr import CodedConcept, RelationshipTypeValues
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from plugins.cxrclip_findings import sr_codes as C
from plugins.cxrclip_findings.export_data import (ExportContent, ScoreEntry, SRExportError, StudyRef,
                                                  ViewRef)
from plugins.cxrclip_findings.sr_codes import finding_code, presence_code
from viewer.io.private_files import write_private_with
from viewer.model.deidentify import EVIDENCE_ATTRS, deidentify_sr

_CONTAINS = RelationshipTypeValues.CONTAINS
_PROPS = RelationshipTypeValues.HAS_PROPERTIES
UNCALIBRATED = ("uncalibrated: the model defines no operating points, so no finding is stated "
                "present or absent; probabilities are the model's zero-shot scores")
CALIBRATED = "calibrated: presence is stated against the model's operating point per finding"
Progress = Callable[[str], None]


def _dicom_views(study: StudyRef) -> list[ViewRef]:
    views = [v for v in study.views if v.source == "dicom" and v.sop_instance_uid]
    if not views:
        raise SRExportError("a DICOM SR can only reference DICOM images; this study has only "
                            "PNG/JPEG views - export JSON instead")
    missing = [v.view_id for v in views if not v.sop_class_uid]
    if missing:
        raise SRExportError(f"views {missing} have no SOP Class UID; read their headers "
                            f"with read_evidence() or fill ViewRef.sop_class_uid")
    return views


def _image_item(view: ViewRef, relationship: RelationshipTypeValues) -> hd.sr.ImageContentItem:
    return hd.sr.ImageContentItem(C.SOURCE, view.sop_class_uid, view.sop_instance_uid,
                                  relationship_type=relationship)


def _num(name: CodedConcept, value: float) -> hd.sr.NumContentItem:
    return hd.sr.NumContentItem(name, float(value), C.NO_UNITS, relationship_type=_PROPS)


def _text(name: CodedConcept, value: str, relationship=_CONTAINS) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name, value, relationship_type=relationship)


def _score_children(entry: ScoreEntry, views: dict[str, ViewRef]) -> list:
    children = [_num(C.PROBABILITY, entry.probability), _num(C.SIMILARITY, entry.similarity)]
    for score in entry.views:
        view = views.get(score.view_id)
        if view is None:
            continue
        item = _num(C.PROBABILITY, score.probability)
        item.ContentSequence = hd.sr.ContentSequence(
            [_image_item(view, RelationshipTypeValues.INFERRED_FROM)])
        children.append(item)
    return children


def _with_children(item, children: list):
    if children:
        item.ContentSequence = hd.sr.ContentSequence(children)
    return item


def _finding_item(entry: ScoreEntry, views: dict[str, ViewRef],
                  operating_points: dict[str, float], out_of_distribution: bool = False):
    threshold = operating_points.get(entry.name)
    presence = C.UNDETERMINED if out_of_distribution else presence_code(entry.probability, threshold)
    children = [hd.sr.CodeContentItem(C.PRESENCE, presence, relationship_type=_PROPS)]
    if threshold is not None:
        children.append(_num(C.OPERATING_POINT, threshold))
    children += _score_children(entry, views)
    item = hd.sr.CodeContentItem(C.FINDING, finding_code(entry.name), relationship_type=_CONTAINS)
    return _with_children(item, children)


def _findings_container(content: ExportContent, views: dict[str, ViewRef]):
    points = content.model.operating_points
    items = [_finding_item(e, views, points, content.out_of_distribution) for e in content.findings]
    return _with_children(hd.sr.ContainerContentItem(C.ZERO_SHOT, relationship_type=_CONTAINS),
                          items)


def _prompts_container(entries: Sequence[ScoreEntry], views: dict[str, ViewRef]):
    items = []
    for e in entries:
        children = _score_children(e, views)
        if e.negative:
            children.insert(0, _text(C.NEGATIVE, e.negative, _PROPS))
        items.append(_with_children(_text(C.PROMPT, e.name), children))
    return _with_children(hd.sr.ContainerContentItem(C.PROMPTS, relationship_type=_CONTAINS),
                          items)


def _model_items(content: ExportContent) -> list:
    model = content.model
    items = [_text(C.ALGORITHM_NAME, model.name or "CXR-CLIP"),
             _text(C.ALGORITHM_VERSION, model.model_id or "unknown"),
             _text(C.INTENDED_USE, model.intended_use or "not stated by the model card"),
             _text(C.CALIBRATION, CALIBRATED if model.calibrated else UNCALIBRATED)]
    if model.synthetic:
        items.append(_text(C.COMMENT, "Synthetic demo model - not for clinical use"))
    return items


def _ood_items(content: ExportContent, views: dict[str, ViewRef]) -> list:
    """A TEXT item per out-of-distribution view, inferred from that view's image."""
    items = []
    for verdict in content.ood:
        view = views.get(verdict.view_id)
        if not verdict.flag or view is None:
            continue
        text = (f"{view.label or view.sop_instance_uid}: outside this model's experience (distance "
                f"{verdict.score:.2f} > threshold {verdict.threshold:.2f}); its findings are not stated")
        items.append(_with_children(_text(C.OUT_OF_DISTRIBUTION, text),
                                    [_image_item(view, RelationshipTypeValues.INFERRED_FROM)]))
    return items


def build_content(content: ExportContent) -> hd.sr.ContainerContentItem:
    """The SR content tree (see module docstring) for ``content``."""
    views = {v.view_id: v for v in _dicom_views(content.study)}
    items = _model_items(content)
    items += _ood_items(content, views)
    if content.findings:
        items.append(_findings_container(content, views))
    if content.prompts:
        items.append(_prompts_container(content.prompts, views))
    if content.draft.strip():
        flags = [_text(C.CONTRADICTION, c, _PROPS) for c in content.contradictions]
        items.append(_with_children(_text(C.DRAFT, content.draft.strip()), flags))
    library = [_image_item(v, _CONTAINS) for v in views.values()]
    items.append(_with_children(
        hd.sr.ContainerContentItem(C.IMAGE_LIBRARY, relationship_type=_CONTAINS), library))
    root = hd.sr.ContainerContentItem(C.REPORT)
    root.ContentSequence = hd.sr.ContentSequence(items)
    return root


def evidence_from_refs(study: StudyRef, include_identifiers: bool = True) -> list[Dataset]:
    """Evidence datasets built from plain data: only UIDs, classes and modality, plus the
    patient/study attributes (empty when ``include_identifiers`` is False)."""
    out = []
    p = study.patient
    for view in _dicom_views(study):
        ds = Dataset()
        for attr in EVIDENCE_ATTRS:
            setattr(ds, attr, "")
        if include_identifiers:
            ds.PatientName, ds.PatientID = p.name, p.patient_id
            ds.PatientBirthDate, ds.PatientSex = p.birth_date, p.sex
            ds.AccessionNumber, ds.StudyDate = study.accession_number, study.study_date
        ds.StudyInstanceUID = study.study_instance_uid
        ds.SeriesInstanceUID = view.series_instance_uid or study.study_instance_uid + ".1"
        ds.SOPClassUID, ds.SOPInstanceUID = view.sop_class_uid, view.sop_instance_uid
        ds.Modality = view.modality or "OT"
        out.append(ds)
    return out


def build_sr(content: ExportContent, evidence: Sequence[Dataset] | None = None,
             include_identifiers: bool = False, manufacturer: str = "CXR-CLIP Viewer",
             progress: Progress | None = None) -> hd.sr.Comprehensive3DSR:
    """A Comprehensive 3D SR document for ``content``.

    With ``include_identifiers`` the patient/study attributes are copied from
    ``evidence`` (the image headers; plain refs when not given); without, the
    evidence is rebuilt from UIDs only and the SR de-identified (module docstring).
    """
    say = progress or (lambda _s: None)
    if include_identifiers:
        evidence = list(evidence) if evidence else evidence_from_refs(content.study)
    else:
        evidence = evidence_from_refs(content.study, include_identifiers=False)
    say("Building the SR content")
    tree = build_content(content)
    say("Building the SR document")
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=tree,
        series_instance_uid=generate_uid(), series_number=990,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=manufacturer,
        is_complete=True, is_final=False, is_verified=False,
        series_description="CXR-CLIP findings")
    if not include_identifiers:
        deidentify_sr(sr)
    return sr


def write_sr(content: ExportContent, path: str | Path,
             evidence: Sequence[Dataset] | None = None, include_identifiers: bool = False,
             progress: Progress | None = None) -> Path:
    """Build the SR and save it to ``path`` (DICOM Part 10 file, mode 0600, atomic)."""
    sr = build_sr(content, evidence, include_identifiers, progress=progress)
    if progress is not None:
        progress("Writing the file")
    return write_private_with(path, lambda fh: sr.save_as(fh, enforce_file_format=True))
