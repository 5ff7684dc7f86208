"""load_image on real files from pydicom-data: codecs, LUT sequences, MONOCHROME1, errors."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from viewer.io.decode import DecodeError, load_image
from viewer.io.scan import scan_folder
from viewer.model.study import View
from viewer.render import data_range, default_display_uint8, pixel_value_at


def _image(data_dir: Path, name: str):
    view, = scan_folder(data_dir / name).studies.views()
    return load_image(view)


@pytest.mark.slow
def test_cr_monochrome1_lungs_dark_and_j2k_lossless_identical(pydicom_data_dir):
    plain = _image(pydicom_data_dir, "RG1_UNCR.dcm")
    assert plain.lut.photometric == "MONOCHROME1" and plain.lut.inverted
    out = default_display_uint8(plain)
    h, w = out.shape
    rows = slice(int(0.3 * h), int(0.6 * h))
    lungs = (out[rows, int(0.2 * w):int(0.35 * w)].mean()
             + out[rows, int(0.65 * w):int(0.8 * w)].mean()) / 2
    mediastinum = out[int(0.3 * h):int(0.8 * h), int(0.45 * w):int(0.55 * w)].mean()
    assert lungs + 40 < mediastinum
    j2k = _image(pydicom_data_dir, "RG1_J2KR.dcm")
    assert np.array_equal(j2k.stored, plain.stored)


@pytest.mark.parametrize("compressed,plain", [
    ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
    ("emri_small_RLE.dcm", "emri_small.dcm"),
    ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
])
def test_lossless_codecs_match_uncompressed(pydicom_data_dir, compressed, plain):
    a, b = _image(pydicom_data_dir, compressed), _image(pydicom_data_dir, plain)
    assert a.decoder == "pydicom"
    assert np.array_equal(a.stored, b.stored)


def test_jpeg_lossless_matches_gdcm(pydicom_data_dir):
    """JPEG-LL.dcm has no uncompressed twin: compare with SimpleITK's GDCM decoder."""
    import SimpleITK as sitk

    image = _image(pydicom_data_dir, "JPEG-LL.dcm")
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(pydicom_data_dir / "JPEG-LL.dcm")))[0]
    assert image.stored.shape == (1024, 256) and image.stored.dtype == np.int16
    assert np.array_equal(image.stored, reference) and image.stored.max() > 0


def test_multiframe_gives_first_frame(pydicom_data_dir):
    ds = pydicom.dcmread(pydicom_data_dir / "emri_small.dcm")
    assert int(ds.NumberOfFrames) == 10
    image = _image(pydicom_data_dir, "emri_small.dcm")
    assert image.stored.shape == (64, 64)
    assert np.array_equal(image.stored, ds.pixel_array[0])


def test_jpeg_lossless_8bit_and_rle_palette(pydicom_data_dir):
    gray = _image(pydicom_data_dir, "JPGLosslessP14SV1_1s_1f_8b.dcm")
    assert gray.stored.dtype == np.uint8 and gray.stored.shape == (768, 1024)
    rle = _image(pydicom_data_dir, "OBXXXX1A_rle.dcm")
    plain = _image(pydicom_data_dir, "OBXXXX1A.dcm")
    assert rle.rgb is not None and rle.rgb.shape == (600, 800, 3)
    assert np.array_equal(rle.rgb, plain.rgb)


def test_modality_lut_sequence(pydicom_data_dir):
    ds = pydicom.dcmread(pydicom_data_dir / "mlut_18.dcm")
    item = ds.ModalityLUTSequence[0]
    entries, first, _bits = item.LUTDescriptor
    table = np.asarray(item.LUTData)
    image = _image(pydicom_data_dir, "mlut_18.dcm")
    for row, col in [(0, 0), (0, 1), (256, 250), (511, 511)]:
        stored = int(ds.pixel_array[row, col])
        expected = table[min(max(stored - first, 0), entries - 1)]
        assert image.modality[row, col] == expected
        assert pixel_value_at(image, row, col) == (stored, float(expected))
    assert image.lut.modality_lut is not None and image.lut.modality_lut.first_mapped == first


def test_voi_lut_sequence_is_default_display(pydicom_data_dir):
    ds = pydicom.dcmread(pydicom_data_dir / "vlut_04.dcm")
    table = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
    image = _image(pydicom_data_dir, "vlut_04.dcm")
    assert image.lut.windows == [] and len(image.lut.voi_luts) == 1
    out = default_display_uint8(image)
    for row, col in [(0, 0), (0, 1), (256, 250), (400, 100)]:
        stored = int(ds.pixel_array[row, col])
        assert out[row, col] == np.rint(table[stored] / 65535 * 255)


def test_decode_errors_are_readable(pydicom_data_dir, tmp_path):
    short = View("x", pydicom_data_dir / "emri_small_jpeg_2k_lossless_too_short.dcm")
    with pytest.raises(DecodeError, match=r"JPEG 2000.*1\.2\.840\.10008\.1\.2\.4\.90.*truncated"):
        load_image(short)
    text = tmp_path / "notes.dcm"
    text.write_text("hello")
    with pytest.raises(DecodeError, match="not a DICOM file"):
        load_image(View("y", text))
    with pytest.raises(DecodeError, match="cannot read image"):
        load_image(View("z", text, source="image"))
    with pytest.raises(DecodeError):
        load_image(View("w", tmp_path / "missing.dcm"))


def test_undecodable_pixels_name_syntax_and_package(make_dicom, monkeypatch):
    """When pydicom and SimpleITK both fail, the message names syntax, UID and packages."""
    import pydicom.pixels

    from viewer.io import decode

    path = make_dicom(np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGLSLossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8garbage\xff\xd9"])
    ds.save_as(path)

    def no_itk(_path):
        raise RuntimeError("ITK ERROR: cannot read")

    monkeypatch.setattr(decode, "_sitk_first_frame", no_itk)
    with pytest.raises(DecodeError, match=r"JPEG-LS Lossless.*1\.2\.840\.10008\.1\.2\.4\.80.*pyjpegls"):
        load_image(View("v", path), isolation="inline")


def test_big_endian_and_no_preamble(pydicom_data_dir, tmp_path):
    big = _image(pydicom_data_dir, "emri_small_big_endian.dcm")
    little = _image(pydicom_data_dir, "emri_small.dcm")
    assert big.stored.dtype.isnative and np.array_equal(big.stored, little.stored)
    shutil.copy(pydicom_data_dir / "OT-PAL-8-face.dcm", tmp_path / "face")
    face = _image(tmp_path, "face")
    assert face.decoder == "pydicom" and face.rgb.shape == (480, 640, 3)
    assert data_range(face) == (0.0, 255.0)
