"""The decode worker's part of showing a view: display copy, its RGB32 pixels and the thumbnail."""
from __future__ import annotations

import numpy as np

from viewer.io.scan import scan_folder
from viewer.qt.image_source import THUMB_SIZE, prepare_view, thumbnail, to_rgb32


def test_rgb32_of_known_grey_and_colour_values():
    grey = np.array([[0, 128, 255]], dtype=np.uint8)
    assert to_rgb32(grey).tolist() == [[0xFF000000, 0xFF808080, 0xFFFFFFFF]]
    colour = np.array([[[1, 2, 3], [255, 0, 16]]], dtype=np.uint8)
    assert to_rgb32(colour).tolist() == [[0xFF010203, 0xFFFF0010]]


def test_prepare_view_brings_the_pixmap_pixels_and_the_thumbnail(study_dir):
    view = scan_folder(study_dir).studies.studies()[0].views()[0]
    pixels = prepare_view(view)
    assert np.array_equal(pixels.small_rgb32, to_rgb32(pixels.small_uint8))
    assert max(pixels.thumb_uint8.shape) <= THUMB_SIZE and pixels.thumb_uint8.dtype == np.uint8
    assert np.array_equal(pixels.thumb_uint8, thumbnail(pixels.small_uint8))


def test_the_view_drops_the_rgb32_copy_once_painted(qtbot, study_dir):
    from viewer.qt.image_view import ImageView

    view = scan_folder(study_dir).studies.studies()[0].views()[0]
    pixels = prepare_view(view)
    widget = ImageView(view)
    qtbot.addWidget(widget)
    widget.set_pixels(pixels)
    image = widget._small_pixmap.toImage()
    row, col = pixels.small_uint8.shape[0] // 2, pixels.small_uint8.shape[1] // 3
    assert image.pixel(col, row) == 0xFF000000 | int(pixels.small_uint8[row, col]) * 0x010101
    assert pixels.small_rgb32 is None
