"""Codes used in the plugin's DICOM SR: standard ones where DICOM's own code tables have them.

Finding codes come from the DICOM code tables shipped with pydicom (PS3.16,
e.g. CID 6102 "Chest Radiographic Findings"): SNOMED CT for cardiomegaly,
pleural effusion, pneumothorax and pulmonary edema, DCM for opacity. The
other CheXpert labels (atelectasis, consolidation, "Lung Lesion", "Support
Devices", "No Finding", ...) have no single standard concept with the same
meaning in those tables, so they get a private code in the ``99CXRCLIP``
scheme whose value is the whole label (e.g. ``ENLARGED_CARDIOMEDIASTINUM``);
values longer than 16 characters go in LongCodeValue (highdicom chooses), so
nothing is cut.
"""
from __future__ import annotations

import re

from highdicom.sr import CodedConcept

SCHEME = "99CXRCLIP"

# CheXpert label -> (code value, scheme, meaning); each checked against pydicom's DICOM tables.
STANDARD_FINDINGS: dict[str, tuple[str, str, str]] = {
    "Cardiomegaly": ("287272002", "SCT", "Cardiomegaly"),
    "Pleural Effusion": ("60046008", "SCT", "Pleural effusion"),
    "Pneumothorax": ("36118008", "SCT", "Pneumothorax"),
    "Edema": ("19242006", "SCT", "Pulmonary edema"),
    "Lung Opacity": ("112001", "DCM", "Opacity"),
}

REPORT = CodedConcept("18748-4", "LN", "Diagnostic imaging report")
ALGORITHM_NAME = CodedConcept("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = CodedConcept("111003", "DCM", "Algorithm Version")
COMMENT = CodedConcept("121106", "DCM", "Comment")
FINDING = CodedConcept("121071", "DCM", "Finding")
PROBABILITY = CodedConcept("122157", "DCM", "Probability")
PRESENCE = CodedConcept("121052", "DCM", "Presence of property")
PRESENT = CodedConcept("52101004", "SCT", "Present")
ABSENT = CodedConcept("272519000", "SCT", "Absent")
UNDETERMINED = CodedConcept("121059", "DCM", "Presence Undetermined")
OPERATING_POINT = CodedConcept("111071", "DCM", "CAD Operating Point")
IMAGE_LIBRARY = CodedConcept("111028", "DCM", "Image Library")
SOURCE = CodedConcept("260753009", "SCT", "Source")
NO_UNITS = CodedConcept("1", "UCUM", "no units")

ZERO_SHOT = CodedConcept("ZERO_SHOT_FINDINGS", SCHEME, "Zero-shot findings")
PROMPTS = CodedConcept("PROMPT_SCORES", SCHEME, "Prompt scores")
PROMPT = CodedConcept("PROMPT", SCHEME, "Prompt")
NEGATIVE = CodedConcept("NEGATIVE_PROMPT", SCHEME, "Negative prompt")
SIMILARITY = CodedConcept("COSINE_SIMILARITY", SCHEME, "Cosine similarity")
DRAFT = CodedConcept("DRAFT_REPORT", SCHEME, "Draft report")
INTENDED_USE = CodedConcept("INTENDED_USE", SCHEME, "Intended use")
CALIBRATION = CodedConcept("CALIBRATION", SCHEME, "Calibration status")
CONTRADICTION = CodedConcept("DRAFT_CONTRADICTION", SCHEME, "Draft contradiction")
OUT_OF_DISTRIBUTION = CodedConcept("OUT_OF_DISTRIBUTION", SCHEME, "Outside the model's experience")


def private_value(name: str) -> str:
    """The private code value of a label: upper case, runs of other characters as "_"."""
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") or "UNNAMED"


def finding_code(name: str) -> CodedConcept:
    """The code of a CheXpert finding: a standard code where one exists, else private (full)."""
    if name in STANDARD_FINDINGS:
        return CodedConcept(*STANDARD_FINDINGS[name])
    return CodedConcept(private_value(name), SCHEME, name[:64])


def presence_code(probability: float, operating_point: float | None) -> CodedConcept:
    """Present / Absent against a calibrated operating point; Undetermined without one."""
    if operating_point is None:
        return UNDETERMINED
    return PRESENT if probability >= operating_point else ABSENT
