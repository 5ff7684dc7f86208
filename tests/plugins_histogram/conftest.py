"""A two-view 16-bit study with non-uniform values, for the histogram plugin tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from PySide6.QtCore import QSettings


def _write(path: Path, pixels: np.ndarray, study: str, position: str, modality: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality, ds.ViewPosition = "H1", "Hist^Test", modality, position
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    ds.WindowCenter, ds.WindowWidth = 3000, 4000
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def hist_study(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    folder = tmp_path / "hist"
    folder.mkdir()
    study = generate_uid()
    _write(folder / "pa.dcm", rng.normal(1500, 400, (40, 50)).clip(0, 4095), study, "PA", "DX")
    _write(folder / "lat.dcm", rng.integers(0, 4096, (40, 50)), study, "LL", "DX")
    return folder


@pytest.fixture
def hist_window(qtbot, tmp_path):
    """Main window with only the installed histogram plugin loaded."""
    from viewer.plugin_host import discover_plugins
    from viewer.qt.main_window import MainWindow

    class EP:
        name = "histogram"

        @staticmethod
        def load():
            return next(d.manifest for d in discover_plugins() if d.entry_name == "histogram")

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings, plugin_entry_points=[EP()])
    qtbot.addWidget(win)
    win.resize(1100, 700)
    win.show()
    qtbot.waitUntil(lambda: "Histogram" in win.plugin_host.registry.names(), timeout=10000)
    return win

