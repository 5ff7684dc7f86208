"""What identifies a patient, and how it is shown while Hide-PHI is on (no Qt).

One rule for the whole viewer (study browser, overlays, window title, tag
browser, Problems panel, plugins): with Hide-PHI on, nothing that names or
identifies a patient, an encounter, a person or a place is shown. The rule
follows the DICOM Basic Application Level Confidentiality Profile
(PS3.15 Annex E, Table E.1-1) for what a viewer displays:

- attributes listed in `IDENTIFYING_KEYWORDS` (names, IDs, accession, birth
  date, age, address, institution and department, physicians and operators,
  free-text comments, device serial numbers, ...);
- every value of a person-name, date, date-time, time or age VR
  (`IDENTIFYING_VRS`), wherever it occurs (also inside sequences);
- instance UIDs (any UI value that is not a UID registered by the standard;
  SOP Class and Transfer Syntax UIDs stay readable);
- private attributes (their content is unknown);
- file names and paths (often built from names or IDs), and any text that
  contains one of the identifiers collected by a `Redactor`.

Clinical descriptors (study and series description, view position, body
part, modality) and the patient's sex stay visible.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from viewer.model.study import Patient, Study, StudyTree, View, format_age, format_dicom_date

ANONYMOUS = "Anonymous"
MASK = "***"

IDENTIFYING_KEYWORDS: frozenset[str] = frozenset({
    # people
    "PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
    "ReferringPhysicianName", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence", "ConsultingPhysicianName",
    "PerformingPhysicianName", "PerformingPhysicianIdentificationSequence", "OperatorsName",
    "OperatorIdentificationSequence", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence", "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence", "RequestingPhysician", "RequestingService",
    "ScheduledPerformingPhysicianName", "ResponsiblePerson", "ResponsibleOrganization",
    "PersonName", "ContentCreatorName", "VerifyingObserverName", "ReviewerName",
    "InterpretationAuthor",
    # identifiers of the patient or the encounter
    "PatientID", "IssuerOfPatientID", "OtherPatientIDs", "OtherPatientIDsSequence",
    "MedicalRecordLocator", "AccessionNumber", "StudyID", "AdmissionID",
    "IssuerOfAdmissionIDSequence", "ServiceEpisodeID", "RequestedProcedureID",
    "PerformedProcedureStepID", "ScheduledProcedureStepID",
    "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest",
    "PatientInsurancePlanCodeSequence", "MilitaryRank", "BranchOfService",
    # demographics and history
    "PatientBirthDate", "PatientBirthTime", "PatientAge", "PatientSize", "PatientWeight",
    "PatientAddress", "CountryOfResidence", "RegionOfResidence", "PatientTelephoneNumbers",
    "PatientTelecomInformation", "EthnicGroup", "Occupation", "PatientReligiousPreference",
    "AdditionalPatientHistory", "PatientComments", "MedicalAlerts", "Allergies", "PatientState",
    "LastMenstrualDate", "PregnancyStatus", "SmokingStatus", "CurrentPatientLocation",
    "PatientInstitutionResidence", "ScheduledPatientInstitutionResidence",
    "AdmittingDiagnosesDescription",
    # places and devices
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "InstitutionCodeSequence", "InstitutionalDepartmentTypeCodeSequence", "StationName",
    "DeviceSerialNumber", "DetectorID", "GantryID",
    # free text that may carry any of the above
    "ImageComments", "StudyComments", "FrameComments", "IdentifyingComments", "VisitComments",
    "RequestedProcedureComments", "ReasonForTheRequestedProcedure", "ReasonForStudy",
    "PerformedProcedureStepDescription", "DerivationDescription", "TextString",
    "OriginalAttributesSequence", "ModifiedAttributesSequence", "RequestAttributesSequence",
})

# Person name, date, date-time, time, age: identifying wherever they occur.
IDENTIFYING_VRS: frozenset[str] = frozenset({"PN", "DA", "DT", "TM", "AS"})


def is_registered_uid(value: str) -> bool:
    """True for UIDs defined by the DICOM standard (SOP classes, transfer syntaxes)."""
    from pydicom.uid import UID

    try:
        return bool(UID(str(value).strip()).keyword)
    except (TypeError, ValueError):
        return False


def is_identifying(keyword: str, vr: str, tag: int, value: object = None) -> bool:
    """True when an element's value must be masked while PHI is hidden.

    ``tag`` is the 32-bit tag (odd group = private); ``value`` is only needed
    for UI elements, to keep standard UIDs readable.
    """
    if (tag >> 16) % 2 == 1:
        return True
    if keyword in IDENTIFYING_KEYWORDS or vr in IDENTIFYING_VRS:
        return True
    if vr == "UI":
        values = value if isinstance(value, (list, tuple)) else [value]
        return not all(v is not None and is_registered_uid(str(v)) for v in values)
    return False


# --- labels shown in the UI ------------------------------------------------
def patient_label(patient: Patient | None, hide_phi: bool) -> str:
    """"Name (ID), F 61Y"; "Anonymous, F" when PHI is hidden (age is identifying)."""
    if patient is None:
        return ANONYMOUS
    if hide_phi:
        return f"{ANONYMOUS}, {patient.sex.strip()}" if patient.sex.strip() else ANONYMOUS
    name = patient.name.replace("^", " ").strip()
    who = f"{name} ({patient.patient_id})" if name else patient.patient_id
    extra = " ".join(p for p in (patient.sex.strip(), format_age(patient.age)) if p)
    return f"{who}, {extra}" if extra else who


def study_label(study: Study, hide_phi: bool, number: int | None = None) -> str:
    """Study row text. Hidden: description and view count only (no date, no UID)."""
    if not hide_phi:
        return study.display_label
    count = sum(len(s.views) for s in study.series)
    text = study.description.strip() or (f"Study {number}" if number else "Study")
    return f"{text} ({count} view{'s' if count != 1 else ''})"


def view_label(view: View, hide_phi: bool, number: int | None = None) -> str:
    """Viewport label: "PA", "LAT L"; the file name is added only while PHI is shown."""
    label = view.position_label
    if hide_phi:
        return label or (f"Image {number}" if number else view.display_label)
    if view.source == "image" or not label:
        name = Path(view.path).name
        return f"{label} ({name})" if label else name
    return label


def format_date(value: str, hide_phi: bool) -> str:
    """A DICOM date for display, or "" while PHI is hidden."""
    return "" if hide_phi else format_dicom_date(value)


# --- file names and paths --------------------------------------------------
_SALT = {"value": b""}


def _salt() -> bytes:
    """A random per-session salt: neutral labels cannot be matched against guessed paths."""
    if not _SALT["value"]:
        _SALT["value"] = secrets.token_bytes(16)
    return _SALT["value"]


def path_label(path: str | Path, hide_phi: bool, kind: str = "file") -> str:
    """The path as text, or ``"file 3f9a02c1"`` (stable within a session) when hidden."""
    if not hide_phi:
        return str(path)
    digest = hashlib.blake2b(str(Path(path)).encode("utf-8", "surrogateescape"),
                             key=_salt(), digest_size=4).hexdigest()
    return f"{kind} {digest}"


def path_secrets(path: str | Path) -> list[str]:
    """Texts that reveal a path: the path itself, its resolved form, name and stem."""
    p = Path(path)
    out = {str(path), str(p), p.name}
    try:
        out.add(str(p.resolve()))
    except (OSError, RuntimeError):
        pass
    if len(p.stem) >= 3:
        out.add(p.stem)
    return [s for s in out if s and s not in (".", "/")]


# A whitespace-delimited token with a path separator, or a bare file name with an image or
# DICOM extension; quotes, brackets and trailing punctuation around it stay.
_PATH_TOKEN = re.compile(r"""[^\s'"`()\[\]{}<>,;]*[\\/][^\s'"`()\[\]{}<>,;]*"""
                         r"""|[^\s'"`()\[\]{}<>,;/\\]+\.(?:dcm|dicom|ima|png|jpe?g|tiff?|bmp)\b""", re.IGNORECASE)


def mask_paths(text: str) -> str:
    """``text`` with every path-like token replaced by its neutral label (``"path 3f9a02c1"``,
    stable within a session, as `path_label` gives): for messages that quote folders or files
    no open study knows about (an archive index, its sources, a file it could not read)."""
    def label(match: re.Match[str]) -> str:
        token = match.group(0)
        core = token.rstrip(".:")
        return (path_label(core, True, "path") + token[len(core):]) if core else token

    return _PATH_TOKEN.sub(label, text or "")


class Redactor:
    """Collects the identifiers of what is open and masks them in free text.

    Messages (Problems reasons, errors, status text) can quote names, IDs or
    paths that no label rule knows about; ``scrub`` replaces every collected
    identifier (case-insensitive, whole tokens only) with "***".
    """

    def __init__(self) -> None:
        self._exact: set[str] = set()
        self._words: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add_texts(self, texts: Iterable[str]) -> None:
        """Identifiers matched anywhere in a text (IDs, accession numbers, paths)."""
        self._exact.update(t.strip() for t in texts if t and len(t.strip()) >= 2)
        self._pattern = None

    def add_name(self, name: str) -> None:
        """A person name: the whole name and each part (>= 2 characters)."""
        parts = [p.strip() for p in re.split(r"[\^=\s,]+", name or "") if len(p.strip()) >= 2]
        self._words.update(parts)
        if name and name.strip():
            self.add_texts([name.strip(), name.replace("^", " ").strip()])
        self._pattern = None

    def add_path(self, path: str | Path) -> None:
        self.add_texts(path_secrets(path))

    def add_patient(self, patient: Patient) -> None:
        self.add_name(patient.name)
        self.add_texts([patient.patient_id, patient.birth_date])

    def add_study(self, study: Study) -> None:
        self.add_texts([study.accession_number, study.study_uid])
        for series in study.series:
            for view in series.views:
                self.add_path(view.path)
                if view.source == "dicom":
                    self.add_texts([view.view_id])

    def add_tree(self, tree: StudyTree) -> None:
        for patient in tree.patients:
            self.add_patient(patient)
            for study in patient.studies:
                self.add_study(study)

    def clear(self) -> None:
        self._exact.clear()
        self._words.clear()
        self._pattern = None

    def scrub(self, text: str) -> str:
        """``text`` with every collected identifier replaced by "***"."""
        pattern = self._compiled()
        return text if pattern is None or not text else pattern.sub(MASK, text)

    def _compiled(self) -> re.Pattern[str] | None:
        if self._pattern is None and (self._exact or self._words):
            texts = sorted(self._exact | self._words, key=len, reverse=True)
            # whole tokens only: ID "12" must not mask "512"
            alternatives = [rf"(?<![A-Za-z0-9]){re.escape(t)}(?![A-Za-z0-9])" for t in texts]
            self._pattern = re.compile("|".join(alternatives), re.IGNORECASE)
        return self._pattern
