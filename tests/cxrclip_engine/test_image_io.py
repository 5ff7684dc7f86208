"""Headless reading of DICOM/PNG files into 8-bit display pixels."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image

from cxrclip.image_io import ImageReadError, read_file, read_study, to_uint8


def test_to_uint8_maps_range_and_clips() -> None:
    out = to_uint8(np.array([-10.0, 0.0, 50.0, 100.0, 200.0]), 0, 100)
    assert out.tolist() == [0, 0, 128, 255, 255]
    assert to_uint8(np.full((2, 2), 7.0)).tolist() == [[0, 0], [0, 0]]


def test_png_gray_and_16bit(tmp_path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "a.png")
    image = read_file(tmp_path / "a.png")
    assert image.pixels.dtype == np.uint8 and np.array_equal(image.pixels, gray)
    assert image.view_id == f"file:{(tmp_path / 'a.png').resolve()}"
    wide = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "b.png")
    assert read_file(tmp_path / "b.png").pixels.tolist() == [[0, 64], [128, 255]]


def test_rgb_png_becomes_gray(tmp_path) -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 255, 255)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert read_file(tmp_path / "c.png").pixels.tolist() == [[255, 0], [0, 0]]


def _window_by_hand(stored: np.ndarray, ds) -> np.ndarray:
    """DICOM LINEAR window to 0..255, written out independently of pydicom."""
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    values = stored.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    scaled = np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0, 1) * 255
    return np.rint(scaled).astype(np.uint8)


def test_monochrome1_dicom_is_windowed_and_inverted(pydicom_data_dir) -> None:
    path = pydicom_data_dir / "RG3_UNCI.dcm"
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    image = read_file(path)
    assert image.pixels.shape == (ds.Rows, ds.Columns) and image.pixels.dtype == np.uint8
    assert image.view_id == ds.SOPInstanceUID and image.label == "AP"
    expected = 255 - _window_by_hand(ds.pixel_array, ds)
    assert np.abs(image.pixels.astype(int) - expected.astype(int)).max() <= 1


def test_multiframe_reads_first_frame(pydicom_data_dir) -> None:
    image = read_file(pydicom_data_dir / "OBXXXX1A_2frame.dcm")
    ds = pydicom.dcmread(pydicom_data_dir / "OBXXXX1A_2frame.dcm")
    assert image.pixels.shape == (ds.Rows, ds.Columns)


def test_folder_reads_images_and_lists_skips(tmp_path, pydicom_data_dir) -> None:
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "broken.dcm").write_bytes(b"not dicom")
    folder = read_study(tmp_path)
    assert [im.label for im in folder.images] == ["a.png"]
    assert [p.name for p, _ in folder.skipped] == ["broken.dcm"]


def test_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(ImageReadError, match="does not exist"):
        read_file(tmp_path / "none.png")
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="x.png: not a readable image"):
        read_file(tmp_path / "x.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageReadError, match="no readable"):
        read_study(empty)
