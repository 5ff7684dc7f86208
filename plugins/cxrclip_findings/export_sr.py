"""Export the results as a DICOM Comprehensive 3D SR (highdicom) that other viewers can show.

Content tree (relationship in brackets)::

    CONTAINER Diagnostic imaging report (LN 18748-4)
      [CONTAINS] TEXT Algorithm Name (DCM 111001)          model name
      [CONTAINS] TEXT Algorithm Version (DCM 111003)       model id
      [CONTAINS] TEXT Comment (DCM 121106)                 "Synthetic demo model ..." if so
      [CONTAINS] CONTAINER Zero-shot findings (99CXRCLIP ZSFIND)
         [CONTAINS] CODE Finding (DCM 121071) = (99CXRCLIP <slug>, <finding>)
            [HAS PROPERTIES] NUM Probability (99CXRCLIP PROB), unit UCUM "1"
            [HAS PROPERTIES] NUM Cosine similarity (99CXRCLIP COSSIM)
            [HAS PROPERTIES] NUM Probability  (one per view)
               [INFERRED FROM] IMAGE Source (SCT 260753009) -> the view's SOP instance
      [CONTAINS] CONTAINER Prompt scores (99CXRCLIP PROMPTS)
         [CONTAINS] TEXT Prompt (99CXRCLIP PROMPT) = text, with the same NUM children
            and [HAS PROPERTIES] TEXT Negative prompt (99CXRCLIP NEGPROMPT)
      [CONTAINS] TEXT Draft report (99CXRCLIP DRAFT)
      [CONTAINS] CONTAINER Image Library (DCM 111028)
         [CONTAINS] IMAGE Source -> each DICOM view

Finding codes use the private scheme ``99CXRCLIP`` (code = finding name in
upper case with underscores) because the CheXpert labels have no single
standard code. The SR inherits patient and study from the images (DICOM needs
that for it to join the study), so it always carries the study's identifiers.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import pydicom
from highdicom.sr import CodedConcept, RelationshipTypeValues
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from plugins.cxrclip_findings.export_data import ExportContent, ScoreEntry, StudyRef, ViewRef

SCHEME = "99CXRCLIP"
REPORT = CodedConcept("18748-4", "LN", "Diagnostic imaging report")
ALGORITHM_NAME = CodedConcept("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = CodedConcept("111003", "DCM", "Algorithm Version")
COMMENT = CodedConcept("121106", "DCM", "Comment")
FINDING = CodedConcept("121071", "DCM", "Finding")
IMAGE_LIBRARY = CodedConcept("111028", "DCM", "Image Library")
SOURCE = CodedConcept("260753009", "SCT", "Source")
ZERO_SHOT = CodedConcept("ZSFIND", SCHEME, "Zero-shot findings")
PROMPTS = CodedConcept("PROMPTS", SCHEME, "Prompt scores")
PROMPT = CodedConcept("PROMPT", SCHEME, "Prompt")
NEGATIVE = CodedConcept("NEGPROMPT", SCHEME, "Negative prompt")
PROBABILITY = CodedConcept("PROB", SCHEME, "Probability")
SIMILARITY = CodedConcept("COSSIM", SCHEME, "Cosine similarity")
DRAFT = CodedConcept("DRAFT", SCHEME, "Draft report")
NO_UNITS = CodedConcept("1", "UCUM", "no units")
_CONTAINS = RelationshipTypeValues.CONTAINS
_PROPS = RelationshipTypeValues.HAS_PROPERTIES
_EVIDENCE_ATTRS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex",
                   "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")


class SRExportError(ValueError):
    """The study cannot be exported as SR; the message says why and what to do."""


def finding_code(name: str) -> CodedConcept:
    """Private code for a finding, e.g. "Pleural Effusion" -> (PLEURAL_EFFUSION, 99CXRCLIP)."""
    value = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")[:16] or "UNNAMED"
    return CodedConcept(value, SCHEME, name[:64])


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
    return hd.sr.ImageContentItem(SOURCE, view.sop_class_uid, view.sop_instance_uid,
                                  relationship_type=relationship)


def _num(name: CodedConcept, value: float) -> hd.sr.NumContentItem:
    return hd.sr.NumContentItem(name, float(value), NO_UNITS, relationship_type=_PROPS)


def _score_children(entry: ScoreEntry, views: dict[str, ViewRef]) -> list:
    children = [_num(PROBABILITY, entry.probability), _num(SIMILARITY, entry.similarity)]
    for score in entry.views:
        view = views.get(score.view_id)
        if view is None:
            continue
        item = _num(PROBABILITY, score.probability)
        item.ContentSequence = hd.sr.ContentSequence(
            [_image_item(view, RelationshipTypeValues.INFERRED_FROM)])
        children.append(item)
    return children


def _with_children(item, children: list):
    if children:
        item.ContentSequence = hd.sr.ContentSequence(children)
    return item


def _findings_container(entries: Sequence[ScoreEntry], views: dict[str, ViewRef]):
    items = [_with_children(hd.sr.CodeContentItem(FINDING, finding_code(e.name),
                                                  relationship_type=_CONTAINS),
                            _score_children(e, views)) for e in entries]
    return _with_children(hd.sr.ContainerContentItem(ZERO_SHOT, relationship_type=_CONTAINS), items)


def _prompts_container(entries: Sequence[ScoreEntry], views: dict[str, ViewRef]):
    items = []
    for e in entries:
        children = _score_children(e, views)
        if e.negative:
            children.insert(0, hd.sr.TextContentItem(NEGATIVE, e.negative, relationship_type=_PROPS))
        items.append(_with_children(
            hd.sr.TextContentItem(PROMPT, e.name, relationship_type=_CONTAINS), children))
    return _with_children(hd.sr.ContainerContentItem(PROMPTS, relationship_type=_CONTAINS), items)


def build_content(content: ExportContent) -> hd.sr.ContainerContentItem:
    """The SR content tree (see module docstring) for ``content``."""
    views = {v.view_id: v for v in _dicom_views(content.study)}
    items = [hd.sr.TextContentItem(ALGORITHM_NAME, content.model.name or "CXR-CLIP",
                                   relationship_type=_CONTAINS),
             hd.sr.TextContentItem(ALGORITHM_VERSION, content.model.model_id or "unknown",
                                   relationship_type=_CONTAINS)]
    if content.model.synthetic:
        items.append(hd.sr.TextContentItem(
            COMMENT, "Synthetic demo model - not for clinical use", relationship_type=_CONTAINS))
    if content.findings:
        items.append(_findings_container(content.findings, views))
    if content.prompts:
        items.append(_prompts_container(content.prompts, views))
    if content.draft.strip():
        items.append(hd.sr.TextContentItem(DRAFT, content.draft.strip(),
                                           relationship_type=_CONTAINS))
    library = [_image_item(v, _CONTAINS) for v in views.values()]
    items.append(_with_children(
        hd.sr.ContainerContentItem(IMAGE_LIBRARY, relationship_type=_CONTAINS), library))
    root = hd.sr.ContainerContentItem(REPORT)
    root.ContentSequence = hd.sr.ContentSequence(items)
    return root


def evidence_from_refs(study: StudyRef) -> list[Dataset]:
    """Minimal evidence datasets built from plain data (when the files are not at hand)."""
    out = []
    for view in _dicom_views(study):
        ds = Dataset()
        ds.PatientName, ds.PatientID = study.patient.name, study.patient.patient_id
        ds.PatientBirthDate, ds.PatientSex = study.patient.birth_date, study.patient.sex
        ds.AccessionNumber, ds.StudyID = study.accession_number, ""
        ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = study.study_date, "", ""
        ds.StudyInstanceUID = study.study_instance_uid
        ds.SeriesInstanceUID = view.series_instance_uid or study.study_instance_uid + ".1"
        ds.SOPClassUID, ds.SOPInstanceUID = view.sop_class_uid, view.sop_instance_uid
        ds.Modality = view.modality or "OT"
        out.append(ds)
    return out


def read_evidence(paths: Sequence[str | Path]) -> list[Dataset]:
    """Headers (no pixels) of the referenced DICOM files, with empty values for missing
    patient/study attributes so highdicom can copy them."""
    out = []
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for attr in _EVIDENCE_ATTRS:
            if attr not in ds:
                setattr(ds, attr, "")
        out.append(ds)
    return out


def build_sr(content: ExportContent, evidence: Sequence[Dataset] | None = None,
             manufacturer: str = "CXR-CLIP Viewer") -> hd.sr.Comprehensive3DSR:
    """A Comprehensive 3D SR document for ``content`` (evidence defaults to the plain refs)."""
    evidence = list(evidence) if evidence else evidence_from_refs(content.study)
    return hd.sr.Comprehensive3DSR(
        evidence=evidence, content=build_content(content),
        series_instance_uid=generate_uid(), series_number=990,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=manufacturer,
        is_complete=True, is_final=False, is_verified=False,
        series_description="CXR-CLIP findings")


def write_sr(content: ExportContent, path: str | Path,
             evidence: Sequence[Dataset] | None = None) -> Path:
    """Build the SR and save it to ``path`` (DICOM Part 10 file)."""
    path = Path(path)
    build_sr(content, evidence).save_as(path, enforce_file_format=True)
    return path
