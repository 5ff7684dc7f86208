"""Hostile files through the GUI (issue 10): the viewer keeps running and lists them in Problems."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest


def _edit(data_dir: Path, name: str, target: Path, study: pydicom.Dataset, **tags) -> Path:
    ds = pydicom.dcmread(data_dir / name)
    ds.StudyInstanceUID, ds.PatientID = study.StudyInstanceUID, study.PatientID
    ds.PatientName = study.PatientName
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(target, enforce_file_format=False)
    return target


@pytest.fixture
def hostile_dir(tmp_path: Path, pydicom_data_dir: Path) -> Path:
    """A study folder: the good radiograph RG1_UNCR, the abort file and the panic file."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    good = shutil.copy(pydicom_data_dir / "RG1_UNCR.dcm", folder / "radiograph.dcm")
    study = pydicom.dcmread(good, stop_before_pixels=True)
    # SimpleITK aborted the process (double free) on this one
    _edit(pydicom_data_dir, "SC_rgb_32bit.dcm", folder / "abort.dcm", study, BitsAllocated=24)
    # the RLE decoder panicked (pyo3 PanicException) on this one
    _edit(pydicom_data_dir, "OBXXXX1A_rle.dcm", folder / "panic.dcm", study, Rows=2, Columns=1)
    return folder


def test_hostile_files_go_to_problems_and_the_radiograph_shows(qtbot, window, hostile_dir):
    window.open_path(hostile_dir)
    qtbot.waitUntil(lambda: window.problems.count() >= 2 and any(
        v.pixels is not None for v in window.image_views()), timeout=60000)
    rows = window.problems.rows()
    reasons = {Path(where).name: reason for where, reason in rows}
    assert "Bits Allocated 24 is not supported" in reasons["abort.dcm"]
    assert "RLE segment 1 holds" in reasons["panic.dcm"] and "RLE Lossless" in reasons["panic.dcm"]
    assert all(len(reason) <= 300 for _where, reason in rows)
    shown = [v for v in window.image_views() if v.pixels is not None]
    assert [v.view.path.name for v in shown] == ["radiograph.dcm"]
    radiograph = shown[0]
    qtbot.waitUntil(lambda: radiograph.image_paints > 0, timeout=10000)
    pixels = radiograph.rendered_uint8()
    assert pixels.ndim == 2 and pixels.std() > 20  # a real image, not blank
    assert window.isVisible()
    failed = [v for v in window.image_views() if v.view.path.name == "panic.dcm"]
    assert failed and failed[0].pixels is None and "RLE segment" in failed[0].message


def test_colour_file_is_shown_in_colour(qtbot, window, pydicom_data_dir, tmp_path):
    folder = tmp_path / "colour"
    folder.mkdir()
    shutil.copy(pydicom_data_dir / "SC_rgb_32bit.dcm", folder / "rgb32.dcm")
    window.open_path(folder)
    qtbot.waitUntil(lambda: len(window.image_views()) == 1
                    and window.image_views()[0].pixels is not None, timeout=30000)
    view = window.image_views()[0]
    shown = view.rendered_uint8()
    assert shown.shape == (100, 100, 3)
    assert shown[50, 50].tolist() == [128, 128, 255] and shown[5, 50].tolist() == [255, 0, 0]
    view.state.set_invert(True)
    assert view.rendered_uint8()[50, 50].tolist() == [127, 127, 0]
    image = view.grab().toImage()
    centre = image.pixelColor(image.width() // 2, image.height() // 2)
    assert (centre.red(), centre.green(), centre.blue()) != (centre.red(),) * 3
    np.testing.assert_array_equal(view.pixels.image.rgb[50, 50], [128, 128, 255])
