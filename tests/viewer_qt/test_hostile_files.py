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


def test_file_of_a_study_not_on_screen_is_listed_once(qtbot, window, pydicom_data_dir, tmp_path):
    """Its background thumbnail fails: Problems lists it without the study being opened,
    and opening the study later does not list it twice."""
    folder = tmp_path / "two_studies"
    folder.mkdir()
    shutil.copy(pydicom_data_dir / "RG1_UNCR.dcm", folder / "radiograph.dcm")
    other = pydicom.Dataset()
    other.StudyInstanceUID, other.PatientID, other.PatientName = "1.2.3.4.5.6.7", "OTHER", "Other^Pat"
    _edit(pydicom_data_dir, "OBXXXX1A_rle.dcm", folder / "panic.dcm", other, Rows=2, Columns=1)
    window.open_path(folder)
    qtbot.waitUntil(lambda: window.problems.count() >= 1, timeout=60000)
    assert [Path(w).name for w, _r in window.problems.rows()] == ["panic.dcm"]
    assert all(v.view.path.name != "panic.dcm" for v in window.image_views())
    other_study = next(s for s in window.scan.studies.studies() if s.study_uid == "1.2.3.4.5.6.7")
    with qtbot.waitSignal(window.study_ready, timeout=30000):
        window.show_study(other_study)
    qtbot.waitUntil(lambda: all(v.message or v.pixels is not None for v in window.image_views()),
                    timeout=30000)
    assert window.problems.count() == 1


def test_colour_export_keeps_colour_and_overlays_blend(pydicom_data_dir, tmp_path):
    """File ▸ Export View as PNG writes what the view shows: colour stays colour."""
    from PIL import Image

    from viewer.io.decode import load_image
    from viewer.io.scan import scan_folder
    from viewer.plugin_api import OverlayLayer
    from viewer.qt.export import compose_export, write_png

    folder = tmp_path / "colour"
    folder.mkdir()
    shutil.copy(pydicom_data_dir / "SC_rgb_32bit.dcm", folder / "rgb32.dcm")
    view = scan_folder(folder).studies.studies()[0].views()[0]
    out = write_png(tmp_path / "out.png", load_image(view), (None, None, None, False), [], 0,
                    False, False)
    saved = np.asarray(Image.open(out))
    assert saved.shape == (100, 100, 3) and saved[50, 50].tolist() == [128, 128, 255]
    red = np.zeros((100, 100, 4), np.uint8)
    red[..., 0], red[..., 3] = 255, 255
    blended = compose_export(saved, [OverlayLayer("h", red, opacity=0.5)], 90, False, False)
    assert blended[50, 49].tolist() == [192, 64, 128]  # (128+255)/2, 128/2, 255/2 rounded
