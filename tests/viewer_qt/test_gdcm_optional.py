"""SimpleITK (GDCM) is the optional ``[gdcm]`` extra: without it, a file that only the fallback
could have read becomes a Problems entry naming the extra; nothing tries to import it."""
from __future__ import annotations

import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLSLossless, generate_uid

from tests.viewer_qt.conftest import gradient, write_view
from viewer.io import decode
from viewer.model.study import View


@pytest.fixture
def undecodable_dir(tmp_path: Path) -> Path:
    """One study: a readable PA and a JPEG-LS lateral whose data pydicom's plugins reject."""
    folder = tmp_path / "study"
    folder.mkdir()
    study = generate_uid()
    write_view(folder / "pa.dcm", gradient(), study, generate_uid(), "PA", 1)
    lateral = write_view(folder / "lat.dcm", gradient(), study, generate_uid(), "LL", 2)
    ds = pydicom.dcmread(lateral)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8garbage\xff\xd9"])
    ds.save_as(lateral)
    return folder


@pytest.fixture
def without_simpleitk(monkeypatch):
    """As if the extra were not installed (``import SimpleITK`` fails), decoding in-process so
    the decode workers, which have it, do not hide the difference."""
    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    before = decode.get_isolation()
    decode.set_isolation("inline")
    yield
    decode.set_isolation(before)


def test_missing_fallback_is_a_problem_naming_the_extra(qtbot, window, undecodable_dir,
                                                        without_simpleitk):
    assert not decode.gdcm_fallback_installed()
    window.open_path(undecodable_dir)
    qtbot.waitUntil(lambda: window.problems.count() >= 1 and any(
        v.pixels is not None for v in window.image_views()), timeout=30000)
    reasons = {Path(where).name: reason for where, reason in window.problems.rows()}
    assert "pip install 'cxrclip-viewer[gdcm]'" in reasons["lat.dcm"]
    assert "JPEG-LS Lossless" in reasons["lat.dcm"] and len(reasons["lat.dcm"]) <= 300
    assert [v.view.path.name for v in window.image_views() if v.pixels is not None] == ["pa.dcm"]


def test_with_the_extra_the_fallback_is_tried(undecodable_dir):
    pytest.importorskip("SimpleITK")
    view = View("lat", undecodable_dir / "lat.dcm")
    with pytest.raises(decode.DecodeError, match="SimpleITK: ") as info:  # it ran, and failed
        decode.load_image(view, isolation="inline")
    assert "[gdcm]" not in str(info.value)
