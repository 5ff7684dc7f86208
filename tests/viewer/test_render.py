"""Render pipeline on hand-made data: exact window math, modality LUT, signed data, presentation."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from viewer.io.decode import load_image
from viewer.io.scan import scan_folder
from viewer.render import (data_range, default_display_uint8, display_range,
                           downsample_for_display, pixel_value_at, render_uint8, voi_lut_table,
                           window_presets)


def _load(path):
    view, = scan_folder(path).studies.views()
    return load_image(view)


def test_linear_window_known_points(make_dicom):
    pixels = np.array([[0, 1, 2047, 2048], [2049, 4094, 4095, 100]], np.uint16)
    image = _load(make_dicom(pixels, bits_stored=12, WindowCenter=2048, WindowWidth=4096))
    out = default_display_uint8(image)
    # y = ((x - 2047.5) / 4095 + 0.5) * 255, rounded
    expected = np.rint(np.clip((pixels - 2047.5) / 4095 + 0.5, 0, 1) * 255)
    assert out.tolist() == expected.astype(np.uint8).tolist()
    assert out[0, 0] == 0 and out[1, 2] == 255 and out[0, 3] == 128
    # width 2: x <= c - 0.5 - (w-1)/2 = 2047 -> 0; x = 2048 -> (0.5 / 1 + 0.5) = 1 -> 255
    narrow = render_uint8(image, (2048, 2))
    assert narrow[0].tolist() == [0, 0, 0, 255] and narrow[1, 0] == 255


def test_voi_functions_per_standard():
    x = np.array([-10.0, 0.0, 49.5, 50.0, 100.0, 200.0])
    linear = voi_lut_table(x, 50, 101, "LINEAR")
    # (x - 49.5) / 100 + 0.5: x = 0 -> 0.005, x = 49.5 -> 0.5, x = 100 -> 1.005 (clamped)
    assert linear.tolist() == pytest.approx([0, 0.005, 0.5, 0.505, 1, 1])
    exact = voi_lut_table(x, 50, 100, "LINEAR_EXACT")
    assert exact.tolist() == pytest.approx([0, 0, 0.495, 0.5, 1, 1])
    sigmoid = voi_lut_table(x, 50, 100, "SIGMOID")
    assert sigmoid[3] == pytest.approx(0.5)
    assert sigmoid[4] == pytest.approx(1 / (1 + np.exp(-2)))
    with pytest.raises(ValueError, match="width must be > 0"):
        voi_lut_table(x, 50, 0)
    with pytest.raises(ValueError, match="LINEAR_EXACT"):
        voi_lut_table(x, 50, 0.5, "LINEAR")
    with pytest.raises(ValueError, match="SIGMOID"):
        voi_lut_table(x, 50, 10, "GAMMA")


def test_sigmoid_from_file(make_dicom):
    pixels = np.array([[0, 100, 200]], np.uint16)
    image = _load(make_dicom(pixels, WindowCenter=100, WindowWidth=100, VOILUTFunction="SIGMOID"))
    out = default_display_uint8(image)
    expected = [np.rint(255 / (1 + np.exp(-4 * (v - 100) / 100))) for v in (0, 100, 200)]
    assert out[0].tolist() == expected


def test_rescale_slope_intercept_and_signed_12_bit(make_dicom):
    pixels = np.array([[-2048, -1, 0, 2047]], np.int16)
    image = _load(make_dicom(pixels, bits_stored=12, RescaleSlope=2, RescaleIntercept=-1024))
    assert image.stored.dtype == np.int16 and image.stored.tolist() == pixels.tolist()
    assert image.modality.tolist() == [[-5120, -1026, -1024, 3070]]
    assert data_range(image) == (-5120, 3070)
    assert pixel_value_at(image, 0, 1) == (-1, -1026.0)
    out = render_uint8(image, (-1024, 2))  # LINEAR width 2 around -1024
    assert out[0].tolist() == [0, 0, 255, 255]
    with pytest.raises(IndexError, match="outside"):
        pixel_value_at(image, 1, 0)


def test_full_range_default_without_windows(make_dicom):
    image = _load(make_dicom(np.array([[100, 150, 200]], np.uint16)))
    assert default_display_uint8(image)[0].tolist() == [0, 128, 255]


@pytest.mark.parametrize("photometric,shape", [("MONOCHROME1", None), ("MONOCHROME2", "INVERSE"),
                                               ("MONOCHROME1", "INVERSE")])
def test_presentation_inversion(make_dicom, photometric, shape):
    attrs = {"PresentationLUTShape": shape} if shape else {}
    image = _load(make_dicom(np.array([[0, 255]], np.uint16), photometric=photometric, **attrs))
    assert default_display_uint8(image)[0].tolist() == [255, 0]
    assert render_uint8(image, invert=True)[0].tolist() == [0, 255]  # user invert on top
    assert display_range(image) == (255, 0)  # low values are shown bright


def test_presets_are_mirrored_for_monochrome1(make_dicom):
    image = _load(make_dicom(np.array([[0, 1000]], np.uint16), photometric="MONOCHROME1",
                             WindowCenter=500, WindowWidth=1000))
    presets = {p.explanation: p for p in window_presets(image)}
    assert presets["File window 1"].center == 500
    assert presets["Lung"].center == pytest.approx(650)  # dark side = high values


def test_lut_cache_and_display_downsample(make_dicom):
    pixels = (np.arange(64 * 48, dtype=np.uint16) % 4096).reshape(64, 48)
    image = _load(make_dicom(pixels, bits_stored=12))
    small = render_uint8(image, (2048, 4096), max_side=16)
    assert small.shape == (16, 12)
    full = render_uint8(image, (2048, 4096))
    assert len(image.cache["luts"]) == 1  # same settings reuse the table
    assert abs(int(small[0, 0]) - int(full[:4, :4].mean())) <= 1


def test_downsample_for_display_area_average():
    arr = np.array([[0, 2, 4, 6, 9], [2, 4, 6, 8, 9]], np.uint16)
    out = downsample_for_display(arr, 3)  # factor 2, last column padded by edge values
    assert out.dtype == np.uint16 and out.tolist() == [[2, 6, 9]]
    assert downsample_for_display(arr, 10) is arr
    floats = downsample_for_display(np.array([[0.0, 1.0], [1.0, 1.0]], np.float32), 1)
    assert floats.tolist() == [[0.75]]
    with pytest.raises(ValueError, match="max_side"):
        downsample_for_display(arr, 0)


def test_png_8_16_bit_and_rgb(tmp_path):
    folder = tmp_path / "p1" / "s1"
    folder.mkdir(parents=True)
    Image.fromarray(np.array([[0, 1000, 65535]], np.uint16)).save(folder / "a.png")
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    Image.fromarray(rgb).save(folder / "b.png")
    views = {v.path.name: v for v in scan_folder(tmp_path).studies.views()}
    gray = load_image(views["a.png"])
    assert gray.stored.dtype == np.uint16 and gray.stored.tolist() == [[0, 1000, 65535]]
    assert default_display_uint8(gray)[0].tolist() == [0, 4, 255]
    colour = load_image(views["b.png"])
    assert colour.rgb is not None and colour.stored[0, 0] == 76  # BT.601 luma of pure red


def test_value_index_schemes():
    from viewer.io.values import build_value_index

    def shift(x):
        return x.astype("float32") + 0.5

    floats = np.array([[0.0, 0.25, 1.0]], np.float32)
    quant = build_value_index(floats, shift)
    assert quant.kind == "quantised"
    assert quant.modality_of(floats) == pytest.approx(floats + 0.5, abs=1 / 4095)
    wide = np.array([[-70000, 5, 70000]], np.int32)
    offset = build_value_index(wide, shift)
    assert offset.kind == "offset" and offset.modality_of(wide).tolist() == [[-69999.5, 5.5, 70000.5]]
    assert offset.modality_range() == (-69999.5, 70000.5)
    signed = np.array([[-3, 2]], np.int16)
    view16 = build_value_index(signed, shift)
    assert view16.kind == "view16" and view16.modality_of(signed).tolist() == [[-2.5, 2.5]]
    assert view16.modality_range() == (-2.5, 2.5)
