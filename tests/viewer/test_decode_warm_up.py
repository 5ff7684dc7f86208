"""Decode workers started and warmed up ahead of the first file (`viewer.io.isolate.prestart`)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from viewer.io import isolate
from viewer.io.decode import load_image
from viewer.io.scan import scan_folder

REPO = Path(__file__).resolve().parents[2]
RLE_STUDY = REPO / "assets" / "sample_studies" / "01_normal"  # RLE Lossless views


def test_warm_up_request_imports_the_decoders_and_returns_nothing():
    """In a fresh interpreter (this one has imported everything already)."""
    code = ("import sys\n"
            "from viewer.io.isolate import WARM_UP, child_decode\n"
            "before = 'pydicom.pixels.decoders.rle' in sys.modules\n"
            "reply = child_decode(WARM_UP, lambda _stage: None)\n"
            "print(before, reply, 'viewer.io.decode' in sys.modules,"
            " 'pydicom.pixels.decoders.rle' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "{}", "True", "True"]


def test_prestart_warms_the_pool_and_decodes_like_in_process():
    isolate.shutdown()  # a fresh pool for this test
    try:
        isolate.prestart()
        views = scan_folder(RLE_STUDY).studies.studies()[0].views()
        isolated = [load_image(v, isolation="process") for v in views]
        inline = [load_image(v, isolation="inline") for v in views]
        for a, b in zip(isolated, inline):
            assert np.array_equal(a.stored, b.stored) and a.decoder == "pydicom"
        assert isolate.pool().restarts == 0
    finally:
        isolate.shutdown()
