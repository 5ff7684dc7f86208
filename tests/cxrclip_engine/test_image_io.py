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


def _raw_cr(path) -> np.ndarray:
    """A CR written as older archives do: no preamble, no 'DICM', no File Meta (implicit VR)."""
    from pydicom.dataset import Dataset

    stored = (np.arange(32 * 48, dtype=np.uint16).reshape(32, 48) % 1000)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1", "1.2.3.4.5"
    ds.StudyInstanceUID, ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "1.2.3", "CR", "CHEST", "PA"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 32, 48, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = stored.tobytes()
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    head = path.read_bytes()[:132]
    assert head[128:132] != b"DICM" and head[:2] == b"\x08\x00"  # really written without preamble
    return to_uint8(stored)


def test_dicom_without_preamble_reads_like_the_viewer(tmp_path, pydicom_data_dir) -> None:
    from cxrclip.index.decode import dicom_meta

    for name in ("old.dcm", "IM000001"):  # with a DICOM suffix and with none (found by its first bytes)
        expected = _raw_cr(tmp_path / name)
        image = read_file(tmp_path / name)
        assert image.view_id == "1.2.3.4.5" and image.label == "PA"
        np.testing.assert_array_equal(image.pixels, expected)
        assert dicom_meta(tmp_path / name).view_position == "PA"  # the archive index reads it too
    face = read_file(pydicom_data_dir / "OT-PAL-8-face.dcm")  # real: palette colour, no preamble
    assert face.pixels.shape == (480, 640) and face.pixels.std() > 10


def test_junk_is_not_forced_into_a_dataset(tmp_path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "noise.dcm").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    # Starts like a group-0008 element with an implicit length, then garbage.
    (tmp_path / "lookalike").write_bytes(b"\x08\x00\x05\x00\x0a\x00\x00\x00" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    for name in ("noise.dcm", "lookalike"):
        with pytest.raises(ImageReadError, match=f"{name}: "):
            read_file(tmp_path / name)
