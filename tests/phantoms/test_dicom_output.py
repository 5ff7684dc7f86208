"""The DICOM files are valid, carry the promised tags, and their default window shows the PNG."""
from __future__ import annotations

import json
import warnings
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from training.phantoms.dicom_io import CR_STORAGE, DX_PRESENTATION_STORAGE


def _files(root: Path) -> list[Path]:
    return sorted((root / "dicom").rglob("*.dcm"))


def test_files_read_without_warnings_and_pixels_match_header(phantom_dir: Path) -> None:
    files = _files(phantom_dir)
    assert len(files) == 24
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ds = pydicom.dcmread(f)
            px = ds.pixel_array
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert px.shape == (ds.Rows, ds.Columns) == (96, 96)
        assert px.dtype == np.uint16
        assert ds.BitsAllocated == 16 and ds.HighBit == ds.BitsStored - 1
        assert ds.BitsStored in (12, 14, 16) and ds.PixelRepresentation == 0
        assert int(px.max()) < 2 ** ds.BitsStored


def test_promised_tags_and_uid_consistency(phantom_dir: Path) -> None:
    by_study: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    sops, photometrics = set(), set()
    for f in _files(phantom_dir):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        by_study[ds.StudyInstanceUID].append(ds)
        sops.add(ds.SOPInstanceUID)
        photometrics.add(ds.PhotometricInterpretation)
        expected_class = CR_STORAGE if ds.Modality == "CR" else DX_PRESENTATION_STORAGE
        assert ds.Modality in ("CR", "DX") and ds.SOPClassUID == expected_class
        assert ds.BodyPartExamined == "CHEST"
        assert ds.PatientName.family_name == "PHANTOM"
        assert all(float(s) > 0.1 for s in ds.PixelSpacing)
        assert float(ds.WindowWidth) > 0
        assert ds.SeriesDescription in ("PA", "AP", "LATERAL")
        assert ds.StudyDate and ds.AccessionNumber and ds.PatientID
    assert len(sops) == 24, "SOP Instance UIDs must be unique"
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}
    assert len(by_study) == 12
    for views in by_study.values():
        positions = {v.ViewPosition for v in views}
        assert "LL" in positions and len(positions & {"PA", "AP"}) == 1
        assert len({v.SeriesInstanceUID for v in views}) == 2
        assert len({(v.PatientID, v.AccessionNumber) for v in views}) == 1


@pytest.mark.parametrize("k", range(4))
def test_default_window_reproduces_png(phantom_dir: Path, k: int) -> None:
    truth = [json.loads(line) for line in (phantom_dir / "ground_truth.jsonl").open()]
    row = truth[k]
    ds = pydicom.dcmread(phantom_dir / row["dicom_files"][0])
    values = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    shown = np.clip((values - c) / w + 0.5, 0, 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        shown = 1.0 - shown
    png = cv2.imread(str(phantom_dir / "png" / row["study_id"] / f"{ds.ViewPosition}.png"),
                     cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8
    assert np.abs(shown * 255 - png).max() <= 1.5
