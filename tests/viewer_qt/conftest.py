"""Fixtures for the Qt viewer tests: a two-view 16-bit study plus a garbage file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from PySide6.QtCore import QSettings

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-778899"
ROWS, COLS = 48, 64


def gradient(rows: int = ROWS, cols: int = COLS, scale: int = 10) -> np.ndarray:
    """Known 16-bit values: ``(row * cols + col) * scale``."""
    return (np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) * scale).astype(np.uint16)


def write_view(path: Path, pixels: np.ndarray, study_uid: str, series_uid: str,
               position: str, number: int) -> Path:
    """One CR file, MONOCHROME2, 16 bits stored, with a file window."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CR_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
    ds.PatientSex, ds.PatientAge = "F", "061Y"
    ds.StudyDate, ds.StudyDescription = "20240105", "CHEST 2 VIEWS"
    ds.Modality, ds.ViewPosition, ds.InstanceNumber = "CR", position, number
    ds.SeriesNumber = number
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.WindowCenter, ds.WindowWidth = 15000, 30000
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "R-10214", "SRT"
    code.CodeMeaning = "postero-anterior" if position == "PA" else "left lateral"
    ds.ViewCodeSequence = [code]
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def make_study(folder: Path, rows: int = ROWS, cols: int = COLS) -> Path:
    """folder/study/{pa,lat}.dcm + folder/garbage.dcm; returns ``folder``."""
    study, s1, s2 = generate_uid(), generate_uid(), generate_uid()
    (folder / "study").mkdir(parents=True, exist_ok=True)
    # lateral written first so reading order is really sorted, not file order
    write_view(folder / "study" / "lat.dcm", gradient(rows, cols, 7)[::-1].copy(), study, s2, "LL", 2)
    write_view(folder / "study" / "pa.dcm", gradient(rows, cols, 10), study, s1, "PA", 1)
    (folder / "garbage.dcm").write_bytes(b"this is not a DICOM file at all" * 10)
    return folder


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    return make_study(tmp_path / "data")


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    """A shown MainWindow without installed plugins."""
    from viewer.qt.main_window import MainWindow

    win = MainWindow(settings=settings, load_plugins=False)
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def opened(qtbot, window, study_dir):
    """The window with the test study opened and both views drawn."""
    window.open_path(study_dir)
    qtbot.waitUntil(lambda: window.current_study is not None and len(window.image_views()) == 2
                    and all(v.pixels is not None for v in window.image_views()), timeout=15000)
    return window


@pytest.fixture(scope="session")
def facts():
    """Constants of the test study (conftest modules are not importable by tests)."""
    from types import SimpleNamespace

    return SimpleNamespace(rows=ROWS, cols=COLS, patient_id=PATIENT_ID, patient_name=PATIENT_NAME,
                           gradient=gradient, make_study=make_study)

