"""One SR de-identification rule and private writes for every export (viewer and plugins)."""
from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pydicom

from viewer.model.calibration import Calibration
from viewer.model.deidentify import DEID_METHOD, deidentify_sr, read_evidence
from viewer.model.measurement_store import MeasureContext, MeasurementStore
from viewer.model.measurements import Measurement


def test_basic_profile_on_an_sr_header() -> None:
    sr = pydicom.Dataset()
    sr.PatientName, sr.PatientID, sr.PatientBirthDate = "Roe^Richard", "RR-1", "19540217"
    sr.AccessionNumber, sr.OtherPatientIDs, sr.InstitutionName = "ACC-9", "X-7", "Saint Elsewhere"
    sr.ContentDate, sr.ContentTime, sr.StudyInstanceUID = "20240101", "101010", "1.2.3"
    deidentify_sr(sr)
    assert (sr.PatientName, sr.PatientID, sr.PatientBirthDate, sr.AccessionNumber) == ("", "", "", "")
    assert "OtherPatientIDs" not in sr and "InstitutionName" not in sr
    assert (sr.ContentDate, sr.ContentTime) == ("19000101", "000000")
    assert sr.StudyInstanceUID == "1.2.3"  # Retain UIDs: the SR still points at its images
    assert sr.PatientIdentityRemoved == "YES" and sr.DeidentificationMethod == DEID_METHOD
    assert [c.CodeValue for c in sr.DeidentificationMethodCodeSequence] == ["113100", "113110"]


def test_evidence_headers_carry_the_type2_attributes(pydicom_data_dir: Path) -> None:
    header = read_evidence([pydicom_data_dir / "MR2_UNCR.dcm"])[0]
    assert "AccessionNumber" in header and "ReferringPhysicianName" in header
    assert "PixelData" not in header


def test_measurement_json_is_private(tmp_path: Path) -> None:
    store = MeasurementStore()
    store.set_context("1.2.3.4", MeasureContext(Calibration(0.5, 0.5, "Pixel Spacing"), lambda: np.ones((8, 8)), "", "PA"))
    store.add(Measurement("ruler", "1.2.3.4", ((0, 0), (3, 4))))
    path = store.write_json(tmp_path / "m.json", include_identifiers=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
