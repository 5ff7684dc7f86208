"""`cxrclip score` reads files into the same 8-bit pixels the viewer hands the plugin."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from cxrclip.image_io import read_file

FILES = ["RG1_UNCR.dcm", "RG3_UNCI.dcm", "MR2_UNCR.dcm", "JPEG2000_UNC.dcm", "vlut_04.dcm", "mlut_18.dcm"]


@pytest.mark.parametrize("name", FILES)
def test_same_display_pixels_as_viewer(tmp_path, pydicom_data_dir, name: str) -> None:
    from viewer.io.decode import load_image
    from viewer.io.scan import scan_folder
    from viewer.render.pipeline import default_display_uint8

    shutil.copy(pydicom_data_dir / name, tmp_path / name)
    result = scan_folder(tmp_path)
    views = [v for patient in result.studies.patients for study in patient.studies for v in study.views()]
    assert len(views) == 1
    expected = default_display_uint8(load_image(views[0]))
    got = read_file(tmp_path / name)
    assert got.view_id == views[0].view_id
    np.testing.assert_array_equal(got.pixels, expected)
