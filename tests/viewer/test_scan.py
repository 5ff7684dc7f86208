"""scan_folder: grouping, reading order, PNG studies, and every kind of bad file."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer.io.scan import scan_folder
from viewer.model.study import View, classify_orientation

PIX = np.arange(12, dtype=np.uint16).reshape(3, 4)


def test_groups_patient_study_series_and_orders_pa_before_lat(make_dicom, tmp_path):
    study, s_lat, s_pa = "1.2.3.1", "1.2.3.1.1", "1.2.3.1.2"
    common = dict(StudyInstanceUID=study, PatientID="P7", PatientSex="F", PatientAge="065Y",
                  StudyDate="20190301", StudyDescription="CHEST PA AND LAT")
    make_dicom(PIX, "a/lat.dcm", SOPInstanceUID="1.9.1", SeriesInstanceUID=s_lat,
               SeriesNumber=1, ViewPosition="LL", **common)
    make_dicom(PIX, "a/pa.dcm", SOPInstanceUID="1.9.2", SeriesInstanceUID=s_pa,
               SeriesNumber=2, ViewPosition="PA", **common)
    make_dicom(PIX, "a/pa2.dcm", SOPInstanceUID="1.9.3", SeriesInstanceUID=s_pa,
               SeriesNumber=2, SeriesDescription="Chest AP portable", **common)
    make_dicom(PIX, "b/other.dcm", SOPInstanceUID="1.9.4", StudyInstanceUID="1.2.3.2",
               PatientID="P7", StudyDate="20180101")
    calls = []
    result = scan_folder(tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert result.problems == [] and calls[-1] == (4, 4) and len(calls) == 4
    patient, = result.studies.patients
    assert [s.study_uid for s in patient.studies] == ["1.2.3.2", study]  # oldest first
    chest = result.studies.study(study)
    assert sorted(s.series_uid for s in chest.series) == [s_lat, s_pa]
    assert [v.view_id for v in chest.views()] == ["1.9.2", "1.9.3", "1.9.1"]
    assert chest.views()[1].is_frontal  # from "AP" in the Series Description
    assert chest.display_label == "2019-03-01 CHEST PA AND LAT (3 views)"
    assert patient.display_label == "Test Patient, F 65Y"


def test_orientation_heuristics():
    assert classify_orientation("", "postero-anterior", "") == "frontal"
    assert classify_orientation("", "", "CHEST LATERAL") == "lateral"
    assert classify_orientation("RL", "", "") == "lateral"
    assert classify_orientation("", "", "CHEST") == "unknown"
    view = View("x", Path("x.dcm"), view_position="AP", laterality="L")
    assert view.display_label == "AP L"
    assert View("y", Path("y.dcm"), view_position="PA", laterality="U").display_label == "PA"


def test_pixel_spacing_zero_missing_and_imager_fallback(make_dicom, tmp_path):
    make_dicom(PIX, "z.dcm", SOPInstanceUID="1.1", PixelSpacing=[0, 0])
    make_dicom(PIX, "i.dcm", SOPInstanceUID="1.2", ImagerPixelSpacing=[0.15, 0.2])
    make_dicom(PIX, "p.dcm", SOPInstanceUID="1.3", PixelSpacing=[0.1, 0.1],
               ImagerPixelSpacing=[0.15, 0.15])
    views = {v.view_id: v for v in scan_folder(tmp_path).studies.views()}
    assert views["1.1"].pixel_spacing is None
    assert views["1.2"].pixel_spacing == (0.15, 0.2)
    assert views["1.2"].pixel_spacing_source == "ImagerPixelSpacing"
    assert views["1.3"].pixel_spacing == (0.1, 0.1)


def test_file_windows_with_explanations(make_dicom, tmp_path):
    path = make_dicom(PIX, WindowCenter=[40, 500], WindowWidth=[400, 2000],
                      WindowCenterWidthExplanation=["SOFT", "BONE"])
    view, = scan_folder(path).studies.views()  # a single file path works too
    assert [(p.center, p.width, p.explanation) for p in view.window_presets] == [
        (40, 400, "SOFT"), (500, 2000, "BONE")]


def test_png_study_folder_mimic_layout(tmp_path):
    study_dir = tmp_path / "p10" / "p10000032" / "s50414267"
    study_dir.mkdir(parents=True)
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(study_dir / "a1.jpg")
    Image.fromarray(np.full((20, 30), 900, np.uint16)).save(study_dir / "b2.png")
    result = scan_folder(tmp_path / "p10")
    assert result.problems == []
    patient, = result.studies.patients
    study, = patient.studies
    assert (patient.patient_id, study.study_uid) == ("p10000032", "s50414267")
    views = study.views()
    assert [v.path.name for v in views] == ["a1.jpg", "b2.png"]
    assert views[0].view_id == f"file:{(study_dir / 'a1.jpg').resolve()}"
    assert (views[0].rows, views[0].columns, views[1].bits_stored) == (20, 30, 16)


def test_bad_files_become_problems(make_dicom, dataset_builder, tmp_path, pydicom_data_dir):
    good = make_dicom(np.zeros((64, 64), np.uint16), "good.dcm", SOPInstanceUID="1.5")
    data = good.read_bytes()
    (tmp_path / "truncated.dcm").write_bytes(data[: len(data) - 1000])
    (tmp_path / "notes.dcm").write_text("this is not DICOM\n")
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    ds = dataset_builder(PIX, SOPInstanceUID="1.6")
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm", enforce_file_format=True)
    ds = dataset_builder(PIX, SOPInstanceUID="1.7", Modality="SR")
    ds.save_as(tmp_path / "report.dcm", enforce_file_format=True)
    ds = dataset_builder(PIX, SOPInstanceUID="1.8")
    del ds.StudyInstanceUID
    ds.save_as(tmp_path / "nouid.dcm", enforce_file_format=True)
    shutil.copy(pydicom_data_dir / "emri_small_jpeg_2k_lossless_too_short.dcm", tmp_path)
    shutil.copy(pydicom_data_dir / "bad_sequence.dcm", tmp_path)
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 200)
    (tmp_path / "README.md").write_text("how these files were made")
    (tmp_path / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 50)
    result = scan_folder(tmp_path)
    reasons = {p.path.name: p.reason for p in result.problems}
    assert "truncated" in reasons["truncated.dcm"]
    assert "truncated" in reasons["emri_small_jpeg_2k_lossless_too_short.dcm"]
    assert "not a DICOM file" in reasons["notes.dcm"]
    assert reasons["empty.dcm"] == "empty file"
    assert "not a readable image" in reasons["fake.png"]
    assert "no pixel data" in reasons["nopixels.dcm"]
    assert "Modality SR" in reasons["report.dcm"]
    assert "StudyInstanceUID" in reasons["nouid.dcm"]
    assert "damaged" in reasons["garbage.dcm"]
    assert sorted(p.name for p in result.skipped) == ["DICOMDIR", "README.md"]
    ok = {v.path.name for v in result.studies.views()}
    assert "good.dcm" in ok
    # bad_sequence.dcm: its pixels are fine; either outcome is acceptable, never a crash
    assert ("bad_sequence.dcm" in ok) != ("bad_sequence.dcm" in reasons)


def test_file_without_preamble_is_read(make_dicom, tmp_path, pydicom_data_dir):
    shutil.copy(pydicom_data_dir / "OT-PAL-8-face.dcm", tmp_path / "nopreamble")
    result = scan_folder(tmp_path / "nopreamble")
    assert result.problems == [] and len(result.studies) == 1


def test_cancel_stops_between_files(make_dicom, tmp_path):
    for i in range(5):
        make_dicom(PIX, f"{i}.dcm", SOPInstanceUID=f"1.{i}")
    seen = []
    result = scan_folder(tmp_path, progress=lambda d, t: seen.append(d),
                         cancel=lambda: len(seen) >= 2)
    assert result.cancelled and len(result.studies) == 2


def test_missing_path_is_a_problem(tmp_path):
    result = scan_folder(tmp_path / "nope")
    assert result.problems[0].reason == "path does not exist"


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "emri_small.dcm", "JPEG-LL.dcm"])
def test_real_headers(pydicom_data_dir, name):
    view, = scan_folder(pydicom_data_dir / name).studies.views()
    assert view.rows > 0 and view.columns > 0 and view.transfer_syntax_uid


def test_fast_header_path_matches_dcmread(pydicom_data_dir, monkeypatch):
    """The raw fast path and pydicom's dcmread give identical views for every sample file."""
    from viewer.io import scan

    fast = scan_folder(pydicom_data_dir)
    monkeypatch.setattr(scan, "read_header_fast", lambda handle, keywords: None)
    slow = scan_folder(pydicom_data_dir)
    assert [(p.path, p.reason) for p in fast.problems] == [(p.path, p.reason) for p in slow.problems]
    assert len(fast.studies) == len(slow.studies) > 30
    for view in slow.studies.views():
        assert fast.studies.view(view.view_id) == view
    assert [s.display_label for s in fast.studies.studies()] == \
        [s.display_label for s in slow.studies.studies()]
    assert [p.display_label for p in fast.studies.patients] == \
        [p.display_label for p in slow.studies.patients]
