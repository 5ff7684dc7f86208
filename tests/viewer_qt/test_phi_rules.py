"""The Hide-PHI rule itself (`viewer.model.phi`, no Qt): what is identifying, labels, scrubbing."""
from __future__ import annotations

from pathlib import Path

from pydicom.datadict import keyword_dict

from viewer.model.phi import (IDENTIFYING_KEYWORDS, MASK, Redactor, is_identifying, path_label,
                              patient_label, study_label, view_label)
from viewer.model.study import Patient, Series, Study, View

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def test_every_identifying_keyword_is_a_dicom_keyword():
    unknown = sorted(k for k in IDENTIFYING_KEYWORDS if k not in keyword_dict)
    assert unknown == []


def test_identifying_elements_by_keyword_vr_privacy_and_uid():
    assert is_identifying("InstitutionalDepartmentName", "LO", 0x00081040)
    assert is_identifying("PatientAge", "AS", 0x00101010)
    assert is_identifying("StudyDate", "DA", 0x00080020)  # dates by VR
    assert is_identifying("AcquisitionDateTime", "DT", 0x0008002A)
    assert is_identifying("SeriesTime", "TM", 0x00080031)
    assert is_identifying("ContentCreatorName", "PN", 0x00700084)
    assert is_identifying("", "LO", 0x00091001)  # private
    assert is_identifying("StudyInstanceUID", "UI", 0x0020000D, ["1.2.826.0.1.3680043.8.498.1"])
    assert not is_identifying("SOPClassUID", "UI", 0x00080016, [CT_IMAGE_STORAGE])
    assert not is_identifying("Modality", "CS", 0x00080060)
    assert not is_identifying("StudyDescription", "LO", 0x00081030)


def _study() -> tuple[Patient, Study, View, View]:
    patient = Patient("MRN-4471", "Doe^Jane", "F", "19610304", "061Y")
    study = Study("1.2.3.4.5", "MRN-4471", "20240105", "101500", "", "ACC-99812", patient=patient)
    dicom = View("1.2.3.4.5.6", Path("/data/Doe_Jane/img0001.dcm"), view_position="PA")
    png = View("file:/data/Doe_Jane/s1/Doe_Jane_1961.png", Path("/data/Doe_Jane/s1/Doe_Jane_1961.png"),
               source="image")
    study.series.append(Series("s", 1, "", "CR", [dicom, png]))
    patient.studies.append(study)
    return patient, study, dicom, png


def test_labels_hide_name_id_age_date_uid_and_file_names():
    patient, study, dicom, png = _study()
    assert patient_label(patient, False) == "Doe Jane (MRN-4471), F 61Y"
    assert patient_label(patient, True) == "Anonymous, F"
    assert study_label(study, False) == "2024-01-05 (2 views)"
    assert study_label(study, True, number=2) == "Study 2 (2 views)"
    assert view_label(png, False) == "Doe_Jane_1961.png"
    assert view_label(png, True, number=2) == "Image 2"
    assert view_label(dicom, True) == view_label(dicom, False) == "PA"
    assert png.display_label == "Image"  # plugins' label: never a file name


def test_path_label_is_neutral_and_stable_within_a_session():
    a, b = "/data/Doe_Jane/a.dcm", "/data/Doe_Jane/b.dcm"
    assert path_label(a, False) == a
    hidden = path_label(a, True)
    assert hidden.startswith("file ") and "Doe" not in hidden and "a.dcm" not in hidden
    assert path_label(a, True) == hidden != path_label(b, True)


def test_redactor_masks_collected_identifiers_as_whole_tokens():
    patient, study, _dicom, _png = _study()
    redactor = Redactor()
    redactor.add_patient(patient)
    redactor.add_study(study)
    text = ("cannot decode /data/Doe_Jane/img0001.dcm (img0001.dcm) of JANE DOE, MRN-4471, "
            "accession ACC-99812, 512 rows")
    scrubbed = redactor.scrub(text)
    for secret in ("Doe", "JANE", "MRN-4471", "ACC-99812", "img0001"):
        assert secret.lower() not in scrubbed.lower()
    assert scrubbed.count(MASK) >= 5 and "512 rows" in scrubbed
    redactor.add_texts(["12"])
    assert "512 rows" in redactor.scrub("512 rows")  # an ID never masks part of a number
