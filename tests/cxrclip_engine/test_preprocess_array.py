"""`preprocess_array` (numpy, for the ONNX runtime) gives the model input of `preprocess_image` (torch)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cxrclip.config import OFFICIAL_RESIZE, PreprocessConfig


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    ramp = np.add.outer(np.arange(301), np.arange(187)).astype(np.float64)
    return [
        (rng.random((300, 211)) * 255).astype(np.uint8),
        (ramp * 40).astype(np.uint16),  # 12-bit-like, min-max scaled
        (rng.random((64, 90, 3)) * 255).astype(np.uint8),  # RGB -> luminance
        np.where(ramp > 200, np.nan, ramp).astype(np.float32),  # NaN become 0
        np.full((50, 70), 9, np.int16),  # constant image
    ]


@pytest.mark.parametrize("config", [
    PreprocessConfig(image_size=64, resize_shorter=72),
    PreprocessConfig(image_size=224, resize_shorter=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    PreprocessConfig(image_size=96, resize_shorter=100, **OFFICIAL_RESIZE),
], ids=["imagenet-crop", "half-mean", "official-resize"])
def test_numpy_path_matches_torch_path(config):
    from cxrclip.preprocess import preprocess_array, preprocess_image

    for image in _images():
        expected = preprocess_image(image, config).numpy()
        got = preprocess_array(image, config)
        assert got.dtype == np.float32 and got.shape == (3, config.image_size, config.image_size)
        assert got.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_known_values():
    from cxrclip.preprocess import preprocess_array

    config = PreprocessConfig(image_size=4, resize_shorter=4, mean=(0.5, 0.25, 0.0), std=(0.5, 0.5, 1.0))
    out = preprocess_array(np.full((4, 4), 255, np.uint8), config)
    assert out[:, 0, 0].tolist() == [1.0, 1.5, 1.0]  # (1 - mean) / std per channel


def test_preprocess_and_checkpoint_modules_do_not_import_torch():
    code = ("import sys, cxrclip.preprocess, cxrclip.checkpoint, cxrclip.engine, cxrclip.runtime_onnx\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
