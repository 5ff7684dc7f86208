"""Which DICOM attributes identify the patient, and how they are masked when PHI is hidden."""
from __future__ import annotations

ANONYMOUS = "Anonymous"
MASK = "***"

# Attributes that name or identify a person or an encounter (masked in the tag browser).
PHI_KEYWORDS: frozenset[str] = frozenset({
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "OtherPatientIDsSequence",
    "PatientBirthName", "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers",
    "PatientBirthDate", "PatientBirthTime", "IssuerOfPatientID", "MedicalRecordLocator",
    "AccessionNumber", "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
    "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy", "RequestingPhysician",
    "InstitutionName", "InstitutionAddress", "StationName", "StudyID", "AdmissionID",
    "ResponsiblePerson", "PersonName", "MilitaryRank", "EthnicGroup", "Occupation",
    "PatientInsurancePlanCodeSequence", "PatientComments", "AdditionalPatientHistory",
})


def mask_name(text: str, hide: bool) -> str:
    """``text`` unchanged, or "Anonymous" when PHI is hidden."""
    return ANONYMOUS if hide else text


def mask_id(text: str, hide: bool) -> str:
    """``text`` unchanged, or "***" when PHI is hidden."""
    return MASK if hide else text
