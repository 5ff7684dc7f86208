"""De-identification of the DICOM SRs the viewer and its plugins write (no Qt).

One rule for every SR export: without "Include identifiers" the SR's own header gets
PS3.15 Annex E's Basic Profile with the Retain UIDs option (the SR must still point at
its images): the patient/study attributes it carries as type 2 are emptied, other
identifiers removed, its own dates and times replaced, and the method recorded.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Patient/study attributes an SR copies from its evidence (type 2: present, may be empty).
EVIDENCE_ATTRS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex",
                  "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")
EMPTIED = EVIDENCE_ATTRS + ("PatientAge",)
REMOVED = ("OtherPatientIDsSequence", "OtherPatientNames", "OtherPatientIDs", "PatientAddress",
           "InstitutionName", "InstitutionAddress", "ReferencedPatientSequence",
           "ReferencedStudySequence")
DUMMY_DATE, DUMMY_TIME = "19000101", "000000"
DEID_METHOD = "PS3.15 E.1 Basic Profile, Retain UIDs Option"  # LO: at most 64 characters
# CID 7050: Basic Application Confidentiality Profile, Retain UIDs Option
DEID_CODES = (("113100", "DCM", "Basic Application Confidentiality Profile"),
              ("113110", "DCM", "Retain UIDs Option"))


def read_evidence(paths: Sequence[str | Path]) -> list[Any]:
    """Headers (no pixels) of the referenced DICOM files, with the type-2 patient/study
    attributes present (empty where a file leaves them out) so an SR can copy them."""
    import pydicom

    out = []
    for path in paths:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in EVIDENCE_ATTRS:
            if keyword not in header:
                setattr(header, keyword, "")
        out.append(header)
    return out


def deidentify_sr(sr: Any) -> Any:
    """Apply the Basic Profile (Retain UIDs) to an SR dataset's own header, in place."""
    from pydicom import Dataset

    for keyword in EMPTIED:
        if keyword in sr:
            setattr(sr, keyword, "")
    for keyword in REMOVED:
        if keyword in sr:
            delattr(sr, keyword)
    for date_kw, time_kw in (("ContentDate", "ContentTime"), ("SeriesDate", "SeriesTime"),
                             ("InstanceCreationDate", "InstanceCreationTime")):
        if date_kw in sr:
            setattr(sr, date_kw, DUMMY_DATE)
        if time_kw in sr:
            setattr(sr, time_kw, DUMMY_TIME)
    sr.PatientIdentityRemoved = "YES"
    sr.DeidentificationMethod = DEID_METHOD
    codes = []
    for value, scheme, meaning in DEID_CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
        codes.append(item)
    sr.DeidentificationMethodCodeSequence = codes
    return sr
